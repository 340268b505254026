"""The pixels a model of a given ``input_size`` sees, and those the perception analyses."""

from __future__ import annotations

from PIL import Image

from seal_agent.errors import InvalidImageError


def model_view(image: Image.Image, input_size: int) -> Image.Image:
    """The view as the model sees it: longer side ``input_size``, area-averaged when shrunk."""
    image = _checked_rgb(image, input_size)
    longer = max(image.size)
    if longer == input_size:
        return image
    scale = input_size / longer
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    if scale < 1:
        return image.resize(size, Image.Resampling.BOX, reducing_gap=3.0)
    return image.resize(size, Image.Resampling.BILINEAR)


def analysis_view(image: Image.Image, input_size: int) -> Image.Image:
    """The pixels the perception analyses: the model's view when it shrinks the image,
    the image itself when the model would enlarge it.

    Enlarging adds no information: a 30 px crop shown at 336 px holds 30 px of detail,
    and its noise, smoothed into 11 px blobs by interpolation, would look like faint
    objects. Analysing the source pixels and scaling the boxes sees exactly what the
    enlarged view holds, with the noise measured where it is independent per pixel, and
    the acuity judged on the detail really there (an object of 3 source px stays a
    smudge however large it is shown).
    """
    image = _checked_rgb(image, input_size)
    if max(image.size) <= input_size:
        return image
    return model_view(image, input_size)


def _checked_rgb(image: Image.Image, input_size: int) -> Image.Image:
    if not isinstance(image, Image.Image):
        raise InvalidImageError(f"expected a PIL image, got {type(image).__name__}")
    if image.width < 1 or image.height < 1:
        raise InvalidImageError(f"image has no pixels ({image.width}x{image.height})")
    if input_size < 8:
        raise ValueError(f"input_size must be >= 8, got {input_size}")
    return image if image.mode == "RGB" else image.convert("RGB")
