"""What every part of the toolkit uses: errors, atomic I/O, run folders, device set-up, seeding,
interrupts, progress displays and the dataset layer. Imports neither ``classify`` nor ``augment``."""
