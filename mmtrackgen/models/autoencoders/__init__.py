from .frame_autoencoder import FrameAutoencoder

__all__ = ['FrameAutoencoder']
