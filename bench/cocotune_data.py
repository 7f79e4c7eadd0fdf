"""Data of the CoCo-Tune study (`cocotune_study.py`): image subsets and their cache.

Two sources: a class-folder tree of images (or its .tar.gz), of which a seeded
subset per class is split 80/20; or, with a teacher trained on
``cifar10_data``'s split, subsets of that split's training and held-out images
(the teacher never saw the held-out ones).
"""

import os
import shutil
import tarfile
import tempfile

import numpy as np


def _extract_subset(archive_path, per_class, seed, destination):
    """Unpacks ``per_class`` seeded-random JPEGs of each class folder of a .tar.gz.

    Only the chosen members are decompressed to disk (the archive holds 50,000).
    """
    with tarfile.open(archive_path) as archive:
        by_class = {}
        for member in archive.getmembers():
            if member.isfile() and member.name.lower().endswith((".jpg", ".jpeg", ".png")):
                by_class.setdefault(os.path.dirname(member.name), []).append(member)
        if not by_class:
            raise ValueError("Expected class folders of images in --data. "
                             f"Received: {archive_path!r}")
        rng = np.random.default_rng(seed)
        chosen = []
        for folder in sorted(by_class):
            members = sorted(by_class[folder], key=lambda m: m.name)
            picks = rng.permutation(len(members))[:per_class]
            chosen += [members[i] for i in sorted(picks)]
        # Archive order: a gzip stream only reads forward, so any other order
        # decompresses the archive again for every backward step.
        chosen.sort(key=lambda m: m.offset)
        archive.extractall(destination, members=chosen, filter="data")
    roots = {os.path.dirname(os.path.dirname(m.name)) for m in chosen}
    return os.path.join(destination, roots.pop()) if len(roots) == 1 else destination


def load_images(path, per_class, seed):
    """``(x_train, y_train), (x_val, y_val)`` from a class-folder tree or its .tar.gz.

    ``per_class`` images of each class, 80 % train / 20 % validation (seeded).
    """
    import keras

    if per_class < 5:
        raise ValueError(f"Expected per_class >= 5. Received: per_class={per_class}")
    cleanup = None
    if os.path.isfile(path) and path.endswith((".tar.gz", ".tgz")):
        cleanup = tempfile.mkdtemp(prefix="cocotune_data_")
        path = _extract_subset(path, per_class, seed, cleanup)
    if not os.path.isdir(path):
        raise ValueError("Expected --data to be an image folder or its .tar.gz. "
                         f"Received: {path!r}")
    if os.path.isdir(os.path.join(path, "train")):
        path = os.path.join(path, "train")
    try:
        dataset = keras.utils.image_dataset_from_directory(
            path, image_size=(32, 32), batch_size=None, shuffle=True, seed=seed, verbose=False)
        counts, images, labels = {}, [], []
        for image, label in dataset.as_numpy_iterator():
            label = int(label)
            if counts.get(label, 0) < per_class:
                counts[label] = counts.get(label, 0) + 1
                images.append(image)
                labels.append(label)
    finally:
        if cleanup:
            shutil.rmtree(cleanup, ignore_errors=True)
    x = np.stack(images).astype("float32") / 255.0
    y = np.asarray(labels, dtype="int32")
    cut = int(len(x) * 0.8)
    return (x[:cut], y[:cut]), (x[cut:], y[cut:])


def split_subsets(data, workdir, train_images, val_images, seed):
    """``train_images`` of the 45,000 training images (as many of each class)
    and ``val_images`` of the 5,000 held out, from ``cifar10_data``'s split;
    float32 pixels in 0-255, the teacher's input."""
    import cifar10_data

    (x_train, y_train), (x_val, y_val) = cifar10_data.load_split(
        data, os.path.join(workdir, "cifar10_uint8.npz"))
    classes = len(cifar10_data.CLASSES)
    if not (classes <= train_images <= len(y_train) and 1 <= val_images <= len(y_val)):
        raise ValueError(f"Expected {classes} <= train_images <= {len(y_train)} and 1 <= "
                         f"val_images <= {len(y_val)}. Received: train_images={train_images}, "
                         f"val_images={val_images}")
    rng = np.random.default_rng(seed)
    pick = np.concatenate([rng.permutation(np.flatnonzero(y_train == c))[:train_images // classes]
                           for c in range(classes)])
    pick = rng.permutation(pick)
    held = rng.permutation(len(y_val))[:val_images]
    return ((x_train[pick].astype("float32"), y_train[pick].astype("int32")),
            (x_val[held].astype("float32"), y_val[held].astype("int32")))


def study_data(data, workdir, seed, per_class=None, train_images=None, val_images=None):
    """``(x_train, y_train), (x_val, y_val)``, cached in ``workdir`` per setting.

    With ``per_class``: `load_images` (pixels in 0-1); otherwise `split_subsets`
    (pixels in 0-255, the split-trained teacher's input).
    """
    if per_class is not None:
        cache = os.path.join(workdir, f"data_{per_class}_{seed}.npz")
    else:
        cache = os.path.join(workdir, f"data_split_{train_images}_{val_images}_{seed}.npz")
    if not os.path.exists(cache):
        if per_class is not None:
            train, validation = load_images(data, per_class, seed)
        else:
            train, validation = split_subsets(data, workdir, train_images, val_images, seed)
        np.savez(cache, x_train=train[0], y_train=train[1], x_val=validation[0],
                 y_val=validation[1])
    with np.load(cache) as arrays:
        return ((arrays["x_train"], arrays["y_train"]), (arrays["x_val"], arrays["y_val"]))
