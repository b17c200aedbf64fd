"""Running a task: schedule and loop, progress, signals, threads per job under launchers."""
