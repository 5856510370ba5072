"""What a meta-training step needs: the LightningModule, its checkpoints, clipping, schedules,
metrics, memory measurement and dashboards."""
