# The YouTube-VIS recipe started from Stable Diffusion 1.5 instead of ModelScope T2V: the image
# UNet initialises the spatial layers, temporal layers start as the identity and train
# (docs/pretrained.md). Grounding trains too; with GLIGEN weights it starts from them.
_base_ = ['./ytvis.py']
pretrained = 'data/pretrained/stable-diffusion-v1-5'
gligen = None  # or 'data/pretrained/gligen-1-4-generation-text-box'
model = dict(
    data_preprocessor=dict(
        vae=dict(pretrained=pretrained), text_encoder=dict(pretrained=pretrained)),
    generator=dict(pretrained=pretrained, weights_format='sd', grounding_weights=gligen),
    tracklet_encoder=dict(category_embedding=dict(pretrained=pretrained)),
    noise_scheduler=dict(from_pretrained=pretrained),
    trainable=('generator.temporal', 'generator.grounding', 'generator.enhancer',
               'tracklet_encoder'))
