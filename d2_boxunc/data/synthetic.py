"""A deterministic synthetic COCO-format instance dataset for CPU tests and demos.

Images show textured shapes (rectangles, ellipses, triangles, stars) on cluttered backgrounds,
with scale variation, partial occlusion and, on a fraction of the objects, blurred or low-contrast
edges.  Every polygon comes from the drawing itself.  So does every box, except on blurred objects:
there, as human annotators disagree on soft boundaries, each edge of the box is the shape's edge
moved by Gaussian noise of ``edge_noise`` times the blur sigma.  Blurred objects
thus have ambiguous boundaries both in the image and in their labels: the label ambiguity that
KL-Loss's variance models and IoU-Net's predicted IoU should pick up.

Boxes and polygons are *amodal* (the whole shape), and occluders may cover at most
``max_occlusion`` of an object's pixels, so every object stays mostly visible.

Each annotation carries two extra fields next to the COCO ones, which the uncertainty
evaluation uses: ``blurred`` (0/1) and ``low_contrast`` (0/1).

The data is generated on first use into ``$D2_BOXUNC_DATA`` (default
``~/.cache/d2_boxunc/synthetic``), in a folder named by a hash of the generation parameters, and
re-used when present.  Writing goes through a temporary folder that is renamed into place, so
several processes asking at once (DDP workers) never see a half-written dataset.

Each folder holds a ``manifest.json``: every file's size and a SHA-256 of ``annotations.json``.
Each use checks the folder against it (sizes and the json's hash; images are not hashed, so the
check costs a ``stat`` per image).  A folder that does not match (a truncated json, a truncated or
missing image, a deleted ``images/`` folder, no manifest) is generated again, with one warning,
and swapped in atomically.
"""

from __future__ import annotations

import contextlib
import dataclasses
import fcntl
import hashlib
import json
import logging
import math
import os
import shutil
import tempfile
from dataclasses import dataclass

import numpy as np
from PIL import Image, ImageDraw, ImageFilter

logger = logging.getLogger(__name__)

# Bump when the drawing code changes, so cached datasets are regenerated.
GENERATOR_VERSION = 5
CLASS_NAMES = ["rectangle", "ellipse", "triangle", "star"]


@dataclass(frozen=True)
class SyntheticConfig:
    """Parameters of one split.  Any change gives a new cache folder."""

    num_images: int = 300
    seed: int = 0
    min_size: int = 256
    max_size: int = 320
    min_objects: int = 2
    max_objects: int = 6
    min_object_frac: float = 0.12  # object size as a fraction of the shorter image side
    max_object_frac: float = 0.5
    blur_frac: float = 0.3  # fraction of objects drawn with blurred edges
    blur_rel: tuple[float, float] = (0.05, 0.10)  # Gaussian blur sigma, as a fraction of size
    edge_noise: float = 1.5  # std of the box-edge label noise on blurred objects / blur sigma
    low_contrast_frac: float = 0.15  # fraction of objects drawn with low contrast
    max_occlusion: float = 0.4  # max fraction of an object's area covered by later objects
    num_distractors: int = 12  # background clutter strokes per image


SPLITS = {
    "boxunc_synth_train": SyntheticConfig(num_images=300, seed=0),
    "boxunc_synth_val": SyntheticConfig(num_images=100, seed=1),
}


def default_root() -> str:
    """Where generated datasets live: ``$D2_BOXUNC_DATA`` or the user's cache folder."""
    env = os.environ.get("D2_BOXUNC_DATA")
    if env:
        return os.path.expanduser(env)
    cache = os.environ.get("XDG_CACHE_HOME", os.path.expanduser("~/.cache"))
    return os.path.join(cache, "d2_boxunc", "synthetic")


def config_hash(cfg: SyntheticConfig) -> str:
    payload = json.dumps(
        {"version": GENERATOR_VERSION, **dataclasses.asdict(cfg)}, sort_keys=True
    ).encode()
    return hashlib.sha1(payload).hexdigest()[:12]


def dataset_dir(name: str, cfg: SyntheticConfig, root: str | None = None) -> str:
    return os.path.join(root or default_root(), f"{name}_{config_hash(cfg)}")


# ----------------------------------------------------------------------------------------------
# Drawing
# ----------------------------------------------------------------------------------------------


def _shape_polygon(cls: int, cx: float, cy: float, w: float, h: float, angle: float) -> np.ndarray:
    """Vertices (V, 2) of a shape of class ``cls`` centred at (cx, cy)."""
    if cls == 0:  # rectangle, rotated
        pts = np.array([[-0.5, -0.5], [0.5, -0.5], [0.5, 0.5], [-0.5, 0.5]]) * [w, h]
    elif cls == 1:  # ellipse, rotated
        t = np.linspace(0, 2 * np.pi, 48, endpoint=False)
        pts = np.stack([0.5 * w * np.cos(t), 0.5 * h * np.sin(t)], axis=1)
    elif cls == 2:  # triangle
        pts = np.array([[0.0, -0.5], [0.5, 0.5], [-0.5, 0.5]]) * [w, h]
    else:  # five-pointed star
        t = np.arange(10) * np.pi / 5 - np.pi / 2
        r = np.where(np.arange(10) % 2 == 0, 0.5, 0.22)
        pts = np.stack([r * w * np.cos(t), r * h * np.sin(t)], axis=1)
    c, s = math.cos(angle), math.sin(angle)
    rot = np.array([[c, -s], [s, c]])
    return pts @ rot.T + [cx, cy]


def _texture(rng: np.random.Generator, h: int, w: int, base: np.ndarray) -> np.ndarray:
    """An (h, w, 3) float texture around colour ``base``: stripes, checks, or noise."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    kind = rng.integers(3)
    if kind == 0:
        period = rng.uniform(4, 12)
        theta = rng.uniform(0, np.pi)
        pattern = np.sin((xx * np.cos(theta) + yy * np.sin(theta)) * 2 * np.pi / period)
    elif kind == 1:
        cell = int(rng.integers(4, 10))
        pattern = (((xx // cell) + (yy // cell)) % 2) * 2 - 1
    else:
        pattern = rng.standard_normal((h, w)).astype(np.float32)
    amp = rng.uniform(10, 35)
    return np.clip(base[None, None, :] + amp * pattern[..., None], 0, 255)


def _background(rng: np.random.Generator, h: int, w: int, n_distractors: int) -> Image.Image:
    """A cluttered background: a colour gradient, noise and random strokes and blobs."""
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    c0, c1 = rng.uniform(40, 215, size=(2, 3)).astype(np.float32)
    t = (xx / w * rng.uniform(-1, 1) + yy / h * rng.uniform(-1, 1)) * 0.5 + 0.5
    img = c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]
    img += 8 * rng.standard_normal((h, w, 3), dtype=np.float32)
    pil = Image.fromarray(np.clip(img, 0, 255).astype(np.uint8))
    draw = ImageDraw.Draw(pil)
    for _ in range(n_distractors):
        color = tuple(int(v) for v in rng.integers(0, 256, size=3))
        x0, y0 = rng.uniform(0, w), rng.uniform(0, h)
        if rng.random() < 0.6:  # a thin curve-like polyline
            pts = [(x0, y0)]
            for _ in range(int(rng.integers(2, 5))):
                x0 += rng.uniform(-40, 40)
                y0 += rng.uniform(-40, 40)
                pts.append((x0, y0))
            draw.line(pts, fill=color, width=int(rng.integers(1, 4)))
        else:  # a small irregular blob, much smaller than any object
            r = rng.uniform(2, 6)
            draw.ellipse([x0 - r, y0 - r * rng.uniform(0.5, 1.5), x0 + r, y0 + r], fill=color)
    return pil.filter(ImageFilter.GaussianBlur(0.6))


def _polygon_mask(poly: np.ndarray, origin: tuple[int, int], h: int, w: int) -> np.ndarray:
    """Boolean (h, w) mask of ``poly`` rasterised in the window whose top-left is ``origin``."""
    m = Image.new("L", (w, h), 0)
    ox, oy = origin
    ImageDraw.Draw(m).polygon([(x - ox, y - oy) for x, y in poly], fill=255)
    return np.asarray(m) > 127


def _draw_image(rng: np.random.Generator, cfg: SyntheticConfig):
    """Draw one image.  Returns (PIL image, list of annotation dicts without ids).

    All per-object work happens in the object's (padded) box window, not the whole image.
    """
    w = int(rng.integers(cfg.min_size, cfg.max_size + 1))
    h = int(rng.integers(cfg.min_size, cfg.max_size + 1))
    canvas = np.asarray(_background(rng, h, w, cfg.num_distractors)).astype(np.float32)
    short = min(h, w)
    objects = []  # (poly, class, blurred, low_contrast, area in pixels, blur sigma)
    occupied = np.zeros((h, w), dtype=np.int32)  # index+1 of the object visible at each pixel
    n_obj = int(rng.integers(cfg.min_objects, cfg.max_objects + 1))
    for _ in range(n_obj):
        for _attempt in range(20):
            cls = int(rng.integers(len(CLASS_NAMES)))
            size = short * math.exp(
                rng.uniform(math.log(cfg.min_object_frac), math.log(cfg.max_object_frac))
            )
            aspect = math.exp(rng.uniform(-0.5, 0.5))
            ow, oh = size * math.sqrt(aspect), size / math.sqrt(aspect)
            angle = rng.uniform(0, 2 * np.pi) if cls != 1 else rng.uniform(0, np.pi)
            cx, cy = rng.uniform(0.1 * w, 0.9 * w), rng.uniform(0.1 * h, 0.9 * h)
            poly = _shape_polygon(cls, cx, cy, ow, oh, angle)
            x1, y1 = poly.min(0)
            x2, y2 = poly.max(0)
            if x1 < 0 or y1 < 0 or x2 > w or y2 > h or min(x2 - x1, y2 - y1) < 8:
                continue
            wx1, wy1 = int(x1), int(y1)
            wx2, wy2 = int(math.ceil(x2)), int(math.ceil(y2))
            mask = _polygon_mask(poly, (wx1, wy1), wy2 - wy1, wx2 - wx1)
            if mask.sum() < 40:
                continue
            # Reject a placement that would hide too much of an earlier object.
            window = occupied[wy1:wy2, wx1:wx2]
            ok = True
            for j, (_, _, _, _, area_j, _) in enumerate(objects):
                covered = int((mask & (window == j + 1)).sum())
                visible = int((occupied == j + 1).sum())
                if covered > cfg.max_occlusion * area_j or visible - covered < 0.5 * area_j:
                    ok = False
                    break
            if ok:
                break
        else:
            continue
        blurred = bool(rng.random() < cfg.blur_frac)
        low_contrast = bool(rng.random() < cfg.low_contrast_frac)
        radius = rng.uniform(*cfg.blur_rel) * size if blurred else 0.0
        pad = int(math.ceil(3 * radius)) + 1
        px1, py1 = max(wx1 - pad, 0), max(wy1 - pad, 0)
        px2, py2 = min(wx2 + pad, w), min(wy2 + pad, h)
        region = canvas[py1:py2, px1:px2]
        if low_contrast:
            local = canvas[wy1:wy2, wx1:wx2].reshape(-1, 3).mean(0)
            base = np.clip(local + rng.uniform(-25, 25, size=3), 0, 255)
        else:
            base = rng.uniform(0, 255, size=3)
        tex = _texture(rng, py2 - py1, px2 - px1, base)
        alpha_img = Image.new("L", (px2 - px1, py2 - py1), 0)
        ImageDraw.Draw(alpha_img).polygon([(x - px1, y - py1) for x, y in poly], fill=255)
        if blurred:
            alpha_img = alpha_img.filter(ImageFilter.GaussianBlur(radius))
        alpha = np.asarray(alpha_img).astype(np.float32)[..., None] / 255.0
        canvas[py1:py2, px1:px2] = region * (1 - alpha) + tex * alpha
        occupied[wy1:wy2, wx1:wx2][mask] = len(objects) + 1
        objects.append((poly, cls, blurred, low_contrast, int(mask.sum()), radius))

    canvas += 3 * rng.standard_normal(canvas.shape, dtype=np.float32)
    image = Image.fromarray(np.clip(canvas, 0, 255).astype(np.uint8))
    annotations = []
    for poly, cls, blurred, low_contrast, _, radius in objects:
        x1, y1 = poly.min(0)
        x2, y2 = poly.max(0)
        if blurred and cfg.edge_noise > 0:
            nx1, ny1, nx2, ny2 = rng.normal(0.0, cfg.edge_noise * radius, size=4)
            min_side = 0.5 * min(x2 - x1, y2 - y1)  # noise never collapses the box
            x1, x2 = max(x1 + nx1, 0.0), min(max(x2 + nx2, x1 + nx1 + min_side), float(w))
            y1, y2 = max(y1 + ny1, 0.0), min(max(y2 + ny2, y1 + ny1 + min_side), float(h))
        annotations.append(
            {
                "category_id": cls + 1,
                "bbox": [float(x1), float(y1), float(x2 - x1), float(y2 - y1)],
                "area": float(_polygon_area(poly)),
                "segmentation": [[float(v) for v in poly.reshape(-1)]],
                "iscrowd": 0,
                "blurred": int(blurred),
                "low_contrast": int(low_contrast),
            }
        )
    return image, annotations


def _polygon_area(poly: np.ndarray) -> float:
    x, y = poly[:, 0], poly[:, 1]
    return 0.5 * abs(float(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))))


def generate(name: str, cfg: SyntheticConfig, out_dir: str) -> None:
    """Write ``cfg.num_images`` PNG images and ``annotations.json`` into ``out_dir``."""
    rng = np.random.default_rng(cfg.seed)
    img_dir = os.path.join(out_dir, "images")
    os.makedirs(img_dir, exist_ok=True)
    images, annotations = [], []
    for i in range(cfg.num_images):
        image, anns = _draw_image(rng, cfg)
        file_name = f"{i:06d}.png"
        image.save(os.path.join(img_dir, file_name), compress_level=1)
        images.append(
            {"id": i + 1, "file_name": file_name, "width": image.width, "height": image.height}
        )
        for a in anns:
            annotations.append({"id": len(annotations) + 1, "image_id": i + 1, **a})
    coco = {
        "info": {
            "description": f"d2_boxunc synthetic dataset {name}",
            "version": str(GENERATOR_VERSION),
            "params": dataclasses.asdict(cfg),
        },
        "images": images,
        "annotations": annotations,
        "categories": [
            {"id": i + 1, "name": n, "supercategory": "shape"} for i, n in enumerate(CLASS_NAMES)
        ],
    }
    with open(os.path.join(out_dir, "annotations.json"), "w") as f:
        json.dump(coco, f)


MANIFEST = "manifest.json"


def _sha256(path: str) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_manifest(folder: str) -> None:
    """Record every file's size under ``folder`` and the SHA-256 of its ``annotations.json``."""
    files = {}
    for dirpath, _, names in os.walk(folder):
        for n in names:
            path = os.path.join(dirpath, n)
            rel = os.path.relpath(path, folder).replace(os.sep, "/")
            if rel != MANIFEST:
                files[rel] = os.path.getsize(path)
    manifest = {
        "files": dict(sorted(files.items())),
        "annotations_sha256": _sha256(os.path.join(folder, "annotations.json")),
    }
    with open(os.path.join(folder, MANIFEST), "w") as f:
        json.dump(manifest, f)


def check_manifest(folder: str) -> str | None:
    """None when ``folder`` matches its manifest; else what is wrong, in a few words."""
    try:
        with open(os.path.join(folder, MANIFEST)) as f:
            manifest = json.load(f)
        files, json_hash = manifest["files"], manifest["annotations_sha256"]
    except FileNotFoundError:
        return "it has no manifest.json"
    except (OSError, ValueError, KeyError, TypeError):
        return "its manifest.json is unreadable"
    if not os.path.isdir(os.path.join(folder, "images")):
        return "images/ is missing"
    for rel, size in files.items():
        try:
            actual = os.stat(os.path.join(folder, rel)).st_size
        except OSError:
            return f"{rel} is missing"
        if actual != size:
            return f"{rel} has {actual} bytes, {size} expected"
    if _sha256(os.path.join(folder, "annotations.json")) != json_hash:
        return "annotations.json differs from the generated one"
    return None


@contextlib.contextmanager
def _lock(path: str):
    """An exclusive lock between processes (generation of one split at a time)."""
    with open(path, "a") as f:
        fcntl.flock(f, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(f, fcntl.LOCK_UN)


def ensure_generated(name: str, cfg: SyntheticConfig, root: str | None = None) -> str:
    """Return the folder of split ``name``, generating it first if it is not cached, or
    again if the cached one does not match its manifest (one warning)."""
    target = dataset_dir(name, cfg, root)
    if os.path.isdir(target) and check_manifest(target) is None:
        return target
    parent = os.path.dirname(target)
    os.makedirs(parent, exist_ok=True)
    with _lock(os.path.join(parent, f".{os.path.basename(target)}.lock")):
        problem = check_manifest(target) if os.path.isdir(target) else None
        if os.path.isdir(target) and problem is None:  # another process made it meanwhile
            return target
        if problem is not None:
            logger.warning(
                f"synthetic dataset {name} in {target} is damaged ({problem}); generating it again"
            )
        else:
            logger.info(
                f"Generating synthetic dataset {name} ({cfg.num_images} images) into {target}"
            )
        tmp = tempfile.mkdtemp(prefix=".tmp_" + os.path.basename(target), dir=parent)
        old = None
        try:
            generate(name, cfg, tmp)
            write_manifest(tmp)
            if os.path.isdir(target):  # swap: the damaged folder out, the new one in
                old = tempfile.mkdtemp(prefix=".old_" + os.path.basename(target), dir=parent)
                os.rename(target, os.path.join(old, "data"))
            os.rename(tmp, target)
        finally:
            for leftover in (tmp, old):
                if leftover is not None and os.path.isdir(leftover):
                    shutil.rmtree(leftover, ignore_errors=True)
    return target
