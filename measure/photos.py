"""The sample photographs: scikit-image's bundled photos, and Debian's CC-licensed wallpapers for training.

``HELD_OUT_PHOTOS`` (scikit-image, no download) are never trained on by ``mmfir.models.train``: the
demo and the shipped-model tests evaluate on them. ``TRAIN_PHOTOS`` are scikit-image's other photos
plus ``WALLPAPERS``: 14 photographs of Debian's ``lomiri-wallpapers-16.04`` package (CC-BY-4.0,
CC-BY-SA-4.0 and CC0-1.0, authors and licences below), which ``python -m mmfir.measure.photos
--fetch`` downloads from Debian's package registry (``apt-get download``, no root needed, unpacked
with ``dpkg-deb``) into the mmfir cache. Each photo has a caption (the content text used in training).
"""
from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from mmfir.runtime.errors import MmfirError
from mmfir.runtime.files import cache_dir, make_staging_dir, replace_dir

WALLPAPER_PACKAGE = "lomiri-wallpapers-16.04"
WALLPAPER_LONG_SIDE = 1024  # the photos are 1.4-16 Mpixel; training crops see them at this size (and half)
# name -> (caption, author, licence) from the package's debian/copyright. Left out: umang_by_Abhishek_Mudgal
# (a computer-made colour gradient, not a photograph).
WALLPAPERS = {
    "aitzgorri_by_Aitzol_Berasategi": ("a photo of autumn forest below a mountain", "Aitzol Berasategi", "CC-BY-4.0"),
    "analogpattern_by_Peter_Nerlich": ("a photo of a textured purple and green surface", "Peter Nerlich",
                                       "CC-BY-SA-4.0"),
    "Bridge_by_Sander_Klootwijk": ("a photo of bridge cables over a beach", "Sander Klootwijk", "CC-BY-SA-4.0"),
    "Dragonfly_by_Bolly": ("a photo of a dragonfly on a branch with leaves", "Bolly", "CC-BY-SA-4.0"),
    "free_by_Peter_Nerlich": ("a photo of a bird toy below lamps", "Peter Nerlich", "CC-BY-SA-4.0"),
    "friends_by_Aitzol_Berasategi": ("a photo of two dogs at a wooden door", "Aitzol Berasategi", "CC-BY-4.0"),
    "greentock_by_Peter_Nerlich": ("a photo of a wall clock", "Peter Nerlich", "CC-BY-SA-4.0"),
    "life_by_Aitzol_Berasategi": ("a photo of a stream among rocks in a forest", "Aitzol Berasategi", "CC-BY-4.0"),
    "picosdeeuropa_by_Aitzol_Berasategi": ("a photo of snowy mountains above a meadow", "Aitzol Berasategi",
                                           "CC-BY-4.0"),
    "Picture_0B_by_freespace": ("a photo of a fig in a red bowl", "Trevor Freespace", "CC-BY-4.0"),
    "Picture_1A_by_freespace": ("a photo of colourful paint brushes", "Trevor Freespace", "CC-BY-4.0"),
    "seeding_by_Clements_Engelhardt": ("a photo of dandelion seed heads in grass", "Clemens Engelhardt", "CC0-1.0"),
    "sunset_by_Aitzol_Berasategi": ("a photo of a sunset over hills", "Aitzol Berasategi", "CC-BY-4.0"),
    "Wine_by_Jakkub_Mede": ("a photo of a room with a drum and a bottle of wine", "Jakub Mede", "CC-BY-4.0"),
}

SKIMAGE_TRAIN_PHOTOS = {
    "motorcycle_left": "a photo of a motorcycle",
    "motorcycle_right": "a photo of a motorcycle",
    "hubble_deep_field": "a photo of galaxies in deep space",
    "immunohistochemistry": "a microscope image of stained tissue",
    "retina": "a photo of the retina of an eye",
    "logo": "a logo on a white background",
    "colorwheel": "a colour wheel",
    "camera": "a black and white photo of a cameraman",
    "coins": "a black and white photo of coins",
    "moon": "a black and white photo of the moon",
    "brick": "a black and white photo of a brick wall",
    "gravel": "a black and white photo of gravel",
    "grass": "a black and white photo of grass",
    "clock": "a black and white photo of a clock",
    "text": "a black and white photo of text",
    "page": "a scanned page of text",
    "cell": "a microscope image of cells",
}
HELD_OUT_PHOTOS = {
    "astronaut": "a photo of an astronaut",
    "chelsea": "a photo of a cat",
    "coffee": "a photo of a cup of coffee",
    "rocket": "a photo of a rocket on a launch pad",
}
TRAIN_PHOTOS = {**SKIMAGE_TRAIN_PHOTOS, **{name: caption for name, (caption, _, _) in WALLPAPERS.items()}}


def wallpaper_dir() -> Path:
    return cache_dir("photos", WALLPAPER_PACKAGE)


def missing_wallpapers(folder: Path | None = None) -> list[str]:
    folder = folder or wallpaper_dir()
    return [name for name in WALLPAPERS if not (folder / f"{name}.jpg").is_file()]


def fetch_wallpapers(folder: Path | None = None, log=print) -> Path:
    """Download Debian's ``lomiri-wallpapers-16.04`` and keep the photos of ``WALLPAPERS`` (plus the licences)."""
    folder = folder or wallpaper_dir()
    if not missing_wallpapers(folder):
        log(f"photos: {len(WALLPAPERS)} wallpapers already in {folder}")
        return folder
    if not shutil.which("apt-get") or not shutil.which("dpkg-deb"):
        raise MmfirError("fetching the training photos needs Debian's apt-get and dpkg-deb (a Debian or Ubuntu "
                         "machine); elsewhere train on scikit-image's photos with --photos skimage")
    with tempfile.TemporaryDirectory(prefix="mmfir-photos-") as tmp:
        log(f"photos: apt-get download {WALLPAPER_PACKAGE} ...")
        run = subprocess.run(["apt-get", "download", WALLPAPER_PACKAGE], cwd=tmp, capture_output=True, text=True)
        debs = sorted(Path(tmp).glob(f"{WALLPAPER_PACKAGE}_*.deb"))
        if run.returncode != 0 or not debs:
            last = (run.stderr.strip().splitlines() or ["no .deb downloaded"])[-1]
            raise MmfirError(f"apt-get download {WALLPAPER_PACKAGE} failed: {last} (try `apt-get update` first)")
        unpacked = Path(tmp) / "x"
        subprocess.run(["dpkg-deb", "-x", str(debs[0]), str(unpacked)], check=True)
        folder.parent.mkdir(parents=True, exist_ok=True)
        staging = make_staging_dir(folder)
        try:
            for name in WALLPAPERS:
                src = unpacked / "usr" / "share" / "backgrounds" / f"{name}.jpg"
                if not src.is_file():
                    raise MmfirError(f"{debs[0].name} has no {src.name}: the package changed; update WALLPAPERS")
                shutil.copyfile(src, staging / src.name)
            doc = unpacked / "usr" / "share" / "doc" / WALLPAPER_PACKAGE / "copyright"
            shutil.copyfile(doc, staging / "copyright")
            (staging / "SOURCE").write_text(f"{debs[0].name} (Debian package registry)\n")
            replace_dir(staging, folder)
        except BaseException:
            shutil.rmtree(staging, ignore_errors=True)
            raise
    log(f"photos: {len(WALLPAPERS)} wallpapers from {debs[0].name} in {folder} (licences: {folder / 'copyright'})")
    return folder


def load_wallpaper(name: str) -> np.ndarray:
    from PIL import Image

    path = wallpaper_dir() / f"{name}.jpg"
    if not path.is_file():
        raise MmfirError(f"training photo {name} is not installed: run `python -m mmfir.measure.photos --fetch` "
                         f"(or train on scikit-image's photos only with --photos skimage)")
    with Image.open(path) as im:
        im = im.convert("RGB")
        scale = WALLPAPER_LONG_SIDE / max(im.size)
        if scale < 1:
            im = im.resize((round(im.width * scale), round(im.height * scale)), Image.LANCZOS)
        return np.asarray(im, dtype=np.float32) / 255.0


def load_photo(name: str) -> np.ndarray:
    """A sample photo as float32 HxWx3 in [0, 1] (grey repeated to RGB, alpha dropped)."""
    if name in WALLPAPERS:
        return load_wallpaper(name)
    try:
        from skimage import data
    except ImportError:
        raise MmfirError("the sample photos come from scikit-image: pip install scikit-image "
                         "(or evaluate your own images with `mmfir evaluate --images DIR`)") from None
    if name.startswith("motorcycle_"):
        img = data.stereo_motorcycle()[0 if name.endswith("left") else 1]
    elif name in SKIMAGE_TRAIN_PHOTOS or name in HELD_OUT_PHOTOS:
        img = getattr(data, name)()
    else:
        raise MmfirError(f"unknown sample photo '{name}' (known: {', '.join([*TRAIN_PHOTOS, *HELD_OUT_PHOTOS])})")
    img = np.asarray(img)
    if img.dtype == bool:
        img = img.astype(np.uint8) * 255
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, axis=2)
    return img[..., :3].astype(np.float32) / 255.0


def held_out_photos(names=None) -> dict[str, np.ndarray]:
    return {name: load_photo(name) for name in (names or HELD_OUT_PHOTOS)}


def main(argv=None) -> int:
    """``python -m mmfir.measure.photos --fetch``: install the training photos into the mmfir cache."""
    p = argparse.ArgumentParser(prog="python -m mmfir.measure.photos", description=main.__doc__)
    p.add_argument("--fetch", action="store_true", help="download the wallpapers (Debian package registry)")
    p.add_argument("--dir", type=Path, help=f"target folder (default {wallpaper_dir()})")
    args = p.parse_args(argv)
    folder = args.dir or wallpaper_dir()
    try:
        if args.fetch:
            fetch_wallpapers(folder, log=lambda m: print(m, file=sys.stderr))
    except (MmfirError, OSError, subprocess.CalledProcessError) as err:
        print(f"photos: error: {err}", file=sys.stderr)
        return 1
    missing = missing_wallpapers(folder)
    print(f"{len(WALLPAPERS) - len(missing)}/{len(WALLPAPERS)} wallpapers in {folder}"
          + (f"; missing: {', '.join(missing)} (run with --fetch)" if missing else ""))
    return 0 if not missing else 1


if __name__ == "__main__":
    sys.exit(main())
