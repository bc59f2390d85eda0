"""The exporters' sending queues, in memory (`sending`) or on disk (`persistent`). Below the
components: exporters queue into them, the `batch` processor sets how they batch (`BatchPolicy`), and
the `file_storage` extension opens the disk stores."""
