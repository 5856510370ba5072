"""The jobs the commands and the Python API run (train, eval, predict, compare), with what
they share: run folders, callbacks, reporting a user's mistakes."""
