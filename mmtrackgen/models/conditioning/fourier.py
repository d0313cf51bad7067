"""Fixed (parameter-free) encodings of coordinates and indices.

- :func:`fourier_embedding`: boxes -> sin/cos features at octave frequencies, so that an MLP can
  resolve fine box positions (the tracklet encoder's box feature: 4 coords x 2 x 8 = 64-d).
- :func:`gligen_fourier_embedding`: GLIGEN's box encoding (frequencies ``100^(k/K)``,
  frequency-major), which checkpoints trained with diffusers' GLIGEN position net expect.
- :func:`sinusoidal_positions`: integer positions (frame index, slot index) -> the transformer
  code. It is computed, not looked up, so there is no maximum number of frames or slots.
"""
import math

import torch


def fourier_embedding(x: torch.Tensor, num_freqs: int) -> torch.Tensor:
    """Sin and cos of every coordinate at frequencies ``2^k * pi``, k = 0..num_freqs-1.

    Args:
        x: (..., C) coordinates, typically xyxy boxes in [0, 1] (C = 4).
        num_freqs: number of frequencies K (>= 1).

    Returns:
        (..., C * 2 * K), coordinate-major: for coordinate c the block
        ``[sin(2^0 pi x_c), ..., sin(2^(K-1) pi x_c), cos(2^0 pi x_c), ..., cos(2^(K-1) pi x_c)]``.
    """
    if num_freqs < 1:
        raise ValueError(f'num_freqs must be >= 1, got {num_freqs}')
    if not x.is_floating_point():
        raise ValueError(f'x must be a floating tensor, got dtype {x.dtype}')
    freqs = math.pi * 2.0**torch.arange(num_freqs, device=x.device, dtype=x.dtype)  # (K,)
    angles = x.unsqueeze(-1) * freqs  # (..., C, K)
    features = torch.cat([angles.sin(), angles.cos()], dim=-1)  # (..., C, 2K)
    return features.flatten(-2)  # (..., C * 2K)


def gligen_fourier_embedding(x: torch.Tensor,
                             num_freqs: int,
                             temperature: float = 100.0) -> torch.Tensor:
    """GLIGEN's Fourier box features: sin and cos at frequencies ``temperature^(k / K)``.

    The encoding of diffusers' ``GLIGENTextBoundingboxProjection`` (and of the TrackDiffusion
    authors' position net, which extends it). Its frequencies and its order differ from
    :func:`fourier_embedding`'s, so a layer trained on one reads the other as different boxes.

    Args:
        x: (..., C) coordinates, typically xyxy boxes in [0, 1] (C = 4).
        num_freqs: number of frequencies K (>= 1).
        temperature: the highest frequency is ``temperature^((K-1)/K)``.

    Returns:
        (..., K * 2 * C), frequency-major: for frequency k the block
        ``[sin(w_k x_1), ..., sin(w_k x_C), cos(w_k x_1), ..., cos(w_k x_C)]``.
    """
    if num_freqs < 1:
        raise ValueError(f'num_freqs must be >= 1, got {num_freqs}')
    if not x.is_floating_point():
        raise ValueError(f'x must be a floating tensor, got dtype {x.dtype}')
    exponents = torch.arange(num_freqs, device=x.device, dtype=x.dtype) / num_freqs  # (K,)
    freqs = temperature**exponents  # (K,)
    angles = x.unsqueeze(-2) * freqs[:, None]  # (..., K, C)
    features = torch.stack([angles.sin(), angles.cos()], dim=-2)  # (..., K, 2, C)
    return features.flatten(-3)  # (..., K * 2 * C)


def sinusoidal_positions(positions: torch.Tensor, dim: int, base: float = 10000.0) -> torch.Tensor:
    """The transformer position code of (any number of) integer or real positions.

    Args:
        positions: (...) positions, e.g. ``torch.arange(F)``; any size, no maximum.
        dim: even code size D.
        base: the longest wavelength is ``2 pi * base``.

    Returns:
        (..., D) float32 (or the dtype of floating ``positions``): ``[sin(p w_i) ; cos(p w_i)]``
        with ``w_i = base^(-i / (D/2))``, i = 0..D/2-1.
    """
    if dim < 2 or dim % 2:
        raise ValueError(f'dim must be a positive even number, got {dim}')
    dtype = positions.dtype if positions.is_floating_point() else torch.float32
    half = dim // 2
    exponents = torch.arange(half, device=positions.device, dtype=dtype) / half  # (D/2,)
    freqs = base**(-exponents)  # (D/2,)
    angles = positions.to(dtype).unsqueeze(-1) * freqs  # (..., D/2)
    return torch.cat([angles.sin(), angles.cos()], dim=-1)  # (..., D)


def token_grid_shape(num_tokens: int, frame_size: tuple[int, int]) -> tuple[int, int]:
    """(h, w) of a feature map of ``num_tokens`` cells taken from a frame of ``frame_size``.

    The UNet halves the map per level (rounding up), so h and w follow from the frame's (H, W)
    and the token count alone; spatial blocks see tokens flattened row-major.
    """
    height, width = frame_size
    stride = 1
    while True:
        grid = (-(-height // stride), -(-width // stride))  # ceil division
        if grid[0] * grid[1] == num_tokens:
            return grid
        if grid[0] * grid[1] < num_tokens:
            raise ValueError(f'{num_tokens} visual tokens are not a feature map of a '
                             f'{height}x{width} frame downsampled by a power of 2.')
        stride *= 2


def cell_box_embedding(grid: tuple[int, int],
                       num_freqs: int,
                       device: torch.device | None = None,
                       dtype: torch.dtype = torch.float32) -> torch.Tensor:
    """The Fourier embedding of every cell of an (h, w) map as a normalised xyxy box.

    The same encoding as the tracklet encoder's boxes, so attention can match a visual token to
    the instance boxes that cover it. Returns (h * w, 4 * 2 * num_freqs), row-major cells.
    """
    height, width = grid
    ys = torch.arange(height, device=device, dtype=torch.float32)  # (h,)
    xs = torch.arange(width, device=device, dtype=torch.float32)  # (w,)
    y, x = torch.meshgrid(ys, xs, indexing='ij')  # (h, w) each
    cells = torch.stack([x / width, y / height, (x + 1) / width, (y + 1) / height],
                        dim=-1)  # (h, w, 4)
    return fourier_embedding(cells.flatten(0, 1), num_freqs).to(dtype)  # (h*w, 8K)


def cell_and_box_codes(boxes: torch.Tensor, grid: tuple[int, int],
                       num_freqs: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The Fourier codes that tell attention where things are, one encoding for both sides:
    (h * w, 8K) for the cells of an (h, w) map (:func:`cell_box_embedding`) and (..., N, 8K)
    for the xyxy normalised ``boxes`` (..., N, 4); float32, as box features need."""
    cells = cell_box_embedding(grid, num_freqs, boxes.device)  # (HW, 8K)
    return cells, fourier_embedding(boxes.float(), num_freqs)  # (HW, 8K), (..., N, 8K)


def cells_in_boxes(boxes: torch.Tensor, visible: torch.Tensor, grid: tuple[int,
                                                                           int]) -> torch.Tensor:
    """Which cells of an (h, w) map each visible box covers.

    A cell is covered when its centre lies inside the box grown by half a cell on every side,
    so a box smaller than a cell still covers the cell it sits in.

    Args:
        boxes: (..., N, 4) xyxy normalised to [0, 1].
        visible: (..., N) bool.
        grid: (h, w).
    Returns:
        (..., h * w, N) bool, row-major cells.
    """
    height, width = grid
    ys = (torch.arange(height, device=boxes.device, dtype=torch.float32) + 0.5) / height  # (h,)
    xs = (torch.arange(width, device=boxes.device, dtype=torch.float32) + 0.5) / width  # (w,)
    cy, cx = torch.meshgrid(ys, xs, indexing='ij')  # (h, w) each
    cx, cy = cx.reshape(-1, 1), cy.reshape(-1, 1)  # (HW, 1) each
    b = boxes.float().unsqueeze(-3)  # (..., 1, N, 4)
    half_w, half_h = 0.5 / width, 0.5 / height
    inside = ((cx >= b[..., 0] - half_w) & (cx <= b[..., 2] + half_w)
              & (cy >= b[..., 1] - half_h) & (cy <= b[..., 3] + half_h))  # (..., HW, N)
    return inside & visible.unsqueeze(-2)  # (..., HW, N)
