"""The commands (`leo-train`, `leo-eval`, `leo-predict`, `leo-compare`): thin shells that read
the command line and run a job from jobs/."""
