"""Running a job: the queue, the training clock, status lines, several processes, the bridge to TRL's trainers."""
