"""The class-conditional DCGAN: configuration, models, losses, DiffAugment, EMA and its trainer."""
