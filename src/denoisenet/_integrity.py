"""Checks that a saved model is what it claims, before anything is allocated.

Unpickling and :func:`skops.io.load` both call an estimator's
``__setstate__`` with the state read from a file. The network is rebuilt
from the stored arguments (``hidden_layer_sizes`` and the like), and a file
altered to claim a gigantic network would make that rebuild allocate
whatever it claims. The stored weights, by contrast, are bounded by the
size of the file; comparing the two on torch's meta device (where building
a module allocates nothing) refuses such a file first.
"""

import torch

__all__ = ["check_layer_count", "check_weights_match", "network_on_meta"]


def network_on_meta(network, network_args, weights, owner):
    """Build ``network(**network_args)`` on the meta device, checked.

    Returns the module, which holds no memory yet, once its weights are
    known to have exactly the shapes of the stored ``weights``; raises
    ValueError for arguments that disagree with them or that no network
    can have.
    """
    check_layer_count(network_args, weights, owner)
    try:
        with torch.device("meta"):
            module = network(**network_args)
    except (RuntimeError, ValueError, TypeError, OverflowError) as exc:
        # torch refuses sizes beyond its index range, even on meta.
        raise _refusal(owner, f"its network arguments are impossible ({exc})") from exc
    check_weights_match(module, weights, owner)
    return module


def _refusal(owner, detail):
    return ValueError(
        f"The saved {owner} is inconsistent: {detail}. The file is damaged or "
        "was altered; it was not loaded."
    )


def check_layer_count(network_args, weights, owner):
    """Raise ValueError when the arguments list more layers than weights exist.

    Every entry of ``hidden_layer_sizes`` and ``conv_channels`` is a layer
    with at least one stored tensor, so a longer list cannot be genuine;
    checked before the module is built, since building even on the meta
    device takes time and memory per layer.
    """
    n_layers = sum(
        len(network_args.get(name) or ())
        for name in ("hidden_layer_sizes", "conv_channels")
    )
    if n_layers > len(weights):
        raise _refusal(
            owner,
            f"its arguments list {n_layers} layers, but it holds only "
            f"{len(weights)} tensors of weights",
        )


def check_weights_match(module, weights, owner):
    """Raise ValueError unless ``weights`` has exactly the shapes of ``module``.

    Parameters
    ----------
    module : torch.nn.Module
        The network built from the stored arguments, on the meta device.
    weights : dict of str to torch.Tensor
        The stored state dict.
    owner : str
        The estimator's class name, for the message.
    """
    expected = {k: tuple(v.shape) for k, v in module.state_dict().items()}
    stored = {k: tuple(getattr(v, "shape", ())) for k, v in weights.items()}
    if expected != stored:
        differ = sorted(
            k
            for k in expected.keys() | stored.keys()
            if expected.get(k) != stored.get(k)
        )[:3]
        shown = ", ".join(
            f"{k}: {expected.get(k, 'absent')} claimed, {stored.get(k, 'absent')} "
            "stored"
            for k in differ
        )
        raise _refusal(owner, f"its arguments describe other weights ({shown})")
