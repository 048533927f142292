"""Small reference generators (GANs, autoencoders, PixelCNN, VQ-VAE, DDPM) trained offline on Fashion-MNIST or scikit-learn's digits.

Every model is a :class:`models.base.Generator`: ``sample(n, generator=None, labels=None) -> uint8 NHWC``.
``models.registry`` builds them by name (``dcgan``, ``cgan``, ``wgan``, ``wgan-gp``, ``ae``, ``vae``,
``pixelcnn``, ``vqvae``, ``ddpm``),
``models.checkpoint`` saves and loads them (safetensors + JSON, no pickle), ``models.train`` runs training
with periodic evaluation through genmetrics' public API. genmetrics itself never imports this package.
"""
