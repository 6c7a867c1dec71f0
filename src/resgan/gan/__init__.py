"""Generation: ResNet generator / discriminator (``models``, ``blocks``), GAN losses, DiffAugment, the
GAN training task (``task``), sampling (``sampling``) and the FID / CAS tracker the task uses (``tracker``)."""
