"""CIFAR-10 training JPEGs as arrays, with a fixed stratified validation split.

``--data`` is the folder of class folders (``train/<class>/*.jpg``) or its
``.tar.gz``. The decoded images are cached as one ``.npz`` next to the run's
other files, so that a resumed run does not decode 50,000 JPEGs again.

The split: ``VALIDATION_PER_CLASS`` images of every class, drawn with a fixed
seed, are held out for validation; the rest train. Every study that starts from
the dense model uses this same split (the teacher never saw the held-out
images).
"""

import io
import os
import tarfile

import numpy as np

CLASSES = ("airplane", "automobile", "bird", "cat", "deer",
           "dog", "frog", "horse", "ship", "truck")
VALIDATION_PER_CLASS = 500
SPLIT_SEED = 20261130


def _decode(blob):
    from PIL import Image

    image = Image.open(io.BytesIO(blob)).convert("RGB")
    if image.size != (32, 32):
        image = image.resize((32, 32), Image.BILINEAR)
    return np.asarray(image, dtype=np.uint8)


def _class_of(path):
    parts = path.replace("\\", "/").split("/")
    if len(parts) < 2 or parts[-2] not in CLASSES:
        return None
    return CLASSES.index(parts[-2])


def _read_archive(path):
    images, labels, names = [], [], []
    with tarfile.open(path) as archive:
        for member in archive:
            if not member.isfile() or not member.name.lower().endswith((".jpg", ".jpeg", ".png")):
                continue
            label = _class_of(member.name)
            if label is None:
                continue
            images.append(_decode(archive.extractfile(member).read()))
            labels.append(label)
            names.append(member.name)
    return images, labels, names


def _read_folder(path):
    images, labels, names = [], [], []
    for root, _, files in os.walk(path):
        for name in files:
            full = os.path.join(root, name)
            label = _class_of(full)
            if label is None or not name.lower().endswith((".jpg", ".jpeg", ".png")):
                continue
            with open(full, "rb") as f:
                images.append(_decode(f.read()))
            labels.append(label)
            names.append(os.path.relpath(full, path))
    return images, labels, names


def read_images(path):
    """``(x uint8 [N,32,32,3], y int32 [N])`` in a fixed (name-sorted) order."""
    if os.path.isfile(path) and path.endswith((".tar.gz", ".tgz")):
        images, labels, names = _read_archive(path)
    elif os.path.isdir(path):
        images, labels, names = _read_folder(path)
    else:
        raise ValueError("Expected --data to be a folder of class folders or its .tar.gz. "
                         f"Received: {path!r}")
    if not images:
        raise ValueError(f"Expected images in class folders named {', '.join(CLASSES)}. "
                         f"Received: {path!r}")
    order = np.argsort(np.asarray(names))
    x = np.stack(images)[order]
    y = np.asarray(labels, dtype=np.int32)[order]
    return x, y


def stratified_split(y, per_class=VALIDATION_PER_CLASS, seed=SPLIT_SEED):
    """Index arrays ``(train, validation)``; ``per_class`` of each class validate."""
    rng = np.random.default_rng(seed)
    validation = []
    for label in range(len(CLASSES)):
        members = np.flatnonzero(y == label)
        if len(members) <= per_class:
            raise ValueError(f"Expected more than {per_class} images of class "
                             f"{CLASSES[label]!r}. Received: {len(members)}")
        validation.append(rng.choice(members, per_class, replace=False))
    validation = np.sort(np.concatenate(validation))
    train = np.setdiff1d(np.arange(len(y)), validation)
    return train, validation


def load_split(data, cache_path=None):
    """``(x_train, y_train), (x_val, y_val)`` as uint8 images and int labels."""
    if cache_path and os.path.exists(cache_path):
        with np.load(cache_path) as cached:
            x, y = cached["x"], cached["y"]
    else:
        x, y = read_images(data)
        if cache_path:
            os.makedirs(os.path.dirname(os.path.abspath(cache_path)), exist_ok=True)
            temporary = cache_path + ".partial.npz"
            np.savez(temporary, x=x, y=y)
            os.replace(temporary, cache_path)
    train, validation = stratified_split(y)
    return (x[train], y[train]), (x[validation], y[validation])
