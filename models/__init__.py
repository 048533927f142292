"""Small reference generators (GANs, autoencoders, PixelCNN, VQ-VAE, DDPM) trained offline on Fashion-MNIST or scikit-learn's digits.

Every model is a :class:`genmetrics_models.base.Generator`: ``sample(n, generator=None, labels=None) -> uint8 NHWC``.
``genmetrics_models.registry`` builds them by name (``dcgan``, ``cgan``, ``wgan``, ``wgan-gp``, ``ae``, ``vae``,
``pixelcnn``, ``vqvae``, ``ddpm``),
``genmetrics_models.checkpoint`` saves and loads them (safetensors + JSON, no pickle), ``genmetrics_models.train`` runs training
with periodic evaluation through genmetrics' public API. genmetrics itself never imports this package.
"""
