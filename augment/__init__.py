"""GAN augmentation: the class-conditional DCGAN, DiffAugment, sampling and FID/KID scoring."""
