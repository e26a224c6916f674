"""The one training loop that every estimator of the package uses.

It is split the way the work is split: :func:`train` runs epochs and owns
stopping, interrupts and progress; :func:`run_epoch` walks the batches;
:func:`train_step` corrupts, predicts, takes the loss and steps the
optimiser. Estimators describe their problem with an :class:`Objective`
(loss, corruption, validation score) and never loop themselves.
"""

import contextlib
import copy
import itertools
import math
import warnings
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from sklearn.exceptions import ConvergenceWarning
from torch.optim import optimizer as _torch_optimizer

from denoisenet._validation import outside_stacklevel

__all__ = [
    "History",
    "NonFiniteLossError",
    "Objective",
    "Schedule",
    "TrainingData",
    "make_optimizer",
    "train",
]


class NonFiniteLossError(FloatingPointError, ValueError):
    """The training loss became NaN or infinite."""


@dataclass
class Objective:
    """What an estimator optimises.

    ``loss(module, inputs, targets, weights)`` returns the (weighted) mean
    loss of a batch; ``targets`` is None when the clean inputs are the
    targets (an auto-encoder). When the training data carry a neighbour
    graph, the loss gets a fifth argument: the graph's adjacency between
    the batch's first rows, an (m, m) boolean tensor (see :func:`_batches`).
    ``corrupt(inputs, generator)`` returns a corrupted copy of a batch, or
    is None. ``validation_score(module, X_val, targets_val)`` returns a
    float, higher is better. ``fused_step``, when given, is a hand-written
    step for the same loss (see :class:`DenseSquaredErrorStep`):
    ``fused_step(module, optimizer, inputs, targets)`` takes the optimiser
    step and returns the detached loss, or None where it does not apply
    (then :func:`train_step` takes the step through autograd).
    """

    loss: Callable
    corrupt: Callable | None = None
    validation_score: Callable | None = None
    fused_step: Callable | None = None
    # What a non-finite loss asks the user to change (the estimators give
    # theirs, which names large loss weights too).
    advice: str = (
        "Try a smaller learning_rate_init, or check the data for extreme values."
    )


@dataclass
class TrainingData:
    """Tensors on the host; ``indices`` selects the rows to train on.

    ``scale``, when given, turns a batch of rows of ``X`` into the float32
    inputs of the network: 8-bit images stay 8-bit in memory (a memmap,
    say) and are scaled one batch at a time, never as a whole.
    """

    X: torch.Tensor
    indices: torch.Tensor
    targets: torch.Tensor | None = None
    weights: torch.Tensor | None = None
    # ``weights`` are the sample weights times this power of two (see
    # _base._float32_weights).
    weight_scale: float = 1.0
    X_val: torch.Tensor | None = None
    targets_val: torch.Tensor | None = None
    scale: Callable | None = None
    # (len(X), k) int32 on the host: row i's neighbours in a graph over the
    # training rows (-1 pads); when set, batches are pairs of neighbours.
    neighbors: torch.Tensor | None = None
    # The first rows of such a batch that its adjacency covers (None: all).
    pair_rows: int | None = None

    def _gather(self, rows, device):
        return self.X.index_select(0, rows).to(device, non_blocking=True)

    def inputs(self, rows, device):
        """The network's inputs: ``rows`` (a tensor) of ``X``, on ``device``."""
        batch = self._gather(rows, device)
        return batch if self.scale is None else self.scale(batch)

    def held_out(self, rows, device):
        """The validation rows: a float32 tensor, or 8-bit rows scaled lazily.

        8-bit rows stay 8-bit (a tenth of a memmap larger than memory would
        otherwise become a float32 copy several times its size) and are
        scaled a chunk at a time by the validation score, exactly as the
        whole would have been.
        """
        batch = self._gather(rows, device)
        return batch if self.scale is None else ScaledRows(batch, self.scale)


class ScaledRows:
    """Rows of 8-bit images that read as float32 scaled chunks.

    Offers what the validation scores use of a tensor: ``shape``, ``len``,
    slicing by a range of rows and ``split``.
    """

    def __init__(self, raw, scale):
        self.raw = raw
        self.scale = scale

    @property
    def shape(self):
        return self.raw.shape

    def __len__(self):
        return self.raw.shape[0]

    def __getitem__(self, rows):
        if not isinstance(rows, slice):
            raise TypeError("ScaledRows is read by ranges of rows")
        return self.scale(self.raw[rows])

    def split(self, step):
        return (self.scale(chunk) for chunk in self.raw.split(step))


@dataclass
class Schedule:
    """The estimator's parameters that steer the loop."""

    batch_size: int
    max_epochs: int
    tol: float = 1e-4
    n_iter_no_change: int = 10
    shuffle: bool = True
    early_stopping: bool = False
    verbose: int = 0
    warn_on_max_iter: bool = True
    learning_rate: str = "constant"
    min_batch_rows: int = 1


@dataclass
class History:
    """What the loop records; the estimators expose it as attributes."""

    loss_curve: list = field(default_factory=list)
    validation_scores: list | None = None
    best_loss: float | None = math.inf
    best_validation_score: float | None = None
    no_improvement_count: int = 0
    n_iter: int = 0
    lr_scale: float = 1.0
    annealed: bool = False
    interrupted: bool = False  # this call was stopped by Ctrl-C

    @classmethod
    def start(cls, early_stopping):
        if early_stopping:
            return cls(
                validation_scores=[], best_loss=None, best_validation_score=-math.inf
            )
        return cls()


def make_optimizer(module, learning_rate_init, alpha, batch_size):
    """Adam with scikit-learn's L2 penalty on the weights (not the biases).

    scikit-learn's MLP adds ``0.5 * alpha * ||W||^2 / batch_size`` to the
    loss; its gradient is exactly Adam's coupled ``weight_decay`` of
    ``alpha / batch_size``. On a CUDA device (with :data:`CUDA_GRAPHS`)
    Adam is ``capturable``, so that :class:`_Stepper` can replay its step
    from a CUDA graph.
    """
    decay, no_decay = [], []
    for name, parameter in module.named_parameters():
        (no_decay if name.endswith("bias") else decay).append(parameter)
    groups = [
        {"params": decay, "weight_decay": alpha / batch_size},
        {"params": no_decay, "weight_decay": 0.0},
    ]
    capturable = CUDA_GRAPHS and any(p.is_cuda for p in module.parameters())
    try:
        # One fused kernel per tensor: on the CPU (one thread, the default
        # network) a step takes 0.44 ms fused, 2.0 ms foreach and 1.4 ms
        # in a loop, a third of an epoch before. Deterministic like the
        # others, so refits stay bit-identical.
        return torch.optim.Adam(
            groups, lr=learning_rate_init, eps=1e-8, fused=True, capturable=capturable
        )
    except RuntimeError:  # a device without fused kernels
        return torch.optim.Adam(
            groups,
            lr=learning_rate_init,
            eps=1e-8,
            foreach=True,
            capturable=capturable,
        )


def train_step(module, optimizer, objective, batch, generator):
    """One optimiser step on one batch; returns the detached loss."""
    inputs, targets, weights, *graph = batch
    if objective.corrupt is not None:
        corrupted = objective.corrupt(inputs, generator)
    else:
        corrupted = inputs
    if targets is None:  # an auto-encoder: the clean inputs
        targets = inputs
    if objective.fused_step is not None and weights is None and not graph:
        loss = objective.fused_step(module, optimizer, corrupted, targets)
        if loss is not None:
            return loss
    loss = objective.loss(module, corrupted, targets, weights, *graph)
    optimizer.zero_grad(set_to_none=True)
    loss.backward()
    adam_step(optimizer)
    return loss.detach()


# The switch for :func:`adam_step`'s direct call of the fused kernel (off:
# every step is ``optimizer.step()``).
DIRECT_ADAM = True
_FLAGS_OFF = ("amsgrad", "maximize", "capturable", "differentiable")


def _direct_adam_groups(optimizer):
    """The argument lists of Adam's fused kernel, one per parameter group;
    None where ``optimizer.step()`` would do anything else.

    That is: torch's own ``Adam`` (not a subclass), every group ``fused``
    with the defaults of the other flags and a float learning rate, no step
    hooks (the optimiser's or global ones), every parameter on the CPU with
    a gradient (torch refuses one of another shape, dtype or device) and a
    state (so not the first step, which creates the state), and one dtype
    per group (Adam groups its tensors by device and dtype before the
    kernel: with one of each, the lists below are the group it makes, in
    its order).
    """
    if (
        not DIRECT_ADAM
        or type(optimizer) is not torch.optim.Adam
        or getattr(optimizer, "grad_scale", None) is not None
        or getattr(optimizer, "found_inf", None) is not None
    ):
        return None
    for owner, name in (
        (optimizer, "_optimizer_step_pre_hooks"),
        (optimizer, "_optimizer_step_post_hooks"),
        (_torch_optimizer, "_global_optimizer_pre_hooks"),
        (_torch_optimizer, "_global_optimizer_post_hooks"),
    ):
        if getattr(owner, name, True):  # hooks registered, or unknown
            return None
    state = optimizer.state
    calls = []
    for group in optimizer.param_groups:
        if (
            not group.get("fused")
            or any(group.get(flag, True) for flag in _FLAGS_OFF)
            or group.get("decoupled_weight_decay", True)
            or any(isinstance(group[k], torch.Tensor) for k in ("lr", "eps"))
            or any(isinstance(beta, torch.Tensor) for beta in group["betas"])
        ):
            return None
        params = group["params"]
        if not params:  # torch's step skips an empty group
            continue
        grads, exp_avgs, exp_avg_sqs, steps = [], [], [], []
        for p in params:
            moments = state.get(p)
            if (
                p.grad is None
                or not moments
                or not p.is_cpu
                or p.dtype != params[0].dtype
            ):
                return None
            grads.append(p.grad)
            exp_avgs.append(moments.get("exp_avg"))
            exp_avg_sqs.append(moments.get("exp_avg_sq"))
            steps.append(moments.get("step"))
        calls.append((group, params, grads, exp_avgs, exp_avg_sqs, steps))
    return calls if _state_fits(optimizer, calls) else None


# optimizer -> the state tensors last found to fit their parameters: the
# kernel updates them in place, so from one step to the next they are the
# same objects, and only a new state (loaded, or edited by hand) is checked.
_fitting_states = weakref.WeakKeyDictionary()


def _state_fits(optimizer, calls):
    """Whether every moment is a tensor of its parameter's shape, dtype and
    device and every step count a one-element CPU tensor. A state loaded
    from elsewhere (another device, a state dict edited by hand) is left
    to torch's step and its checks."""
    tensors = [t for call in calls for part in call[3:] for t in part]
    known = _fitting_states.get(optimizer)
    if known is not None and len(known) == len(tensors):
        if all(a is b for a, b in zip(known, tensors, strict=True)):
            return True
    for _, params, _, exp_avgs, exp_avg_sqs, steps in calls:
        for p, exp_avg, exp_avg_sq, step in zip(
            params, exp_avgs, exp_avg_sqs, steps, strict=True
        ):
            if (
                not _like(exp_avg, p)
                or not _like(exp_avg_sq, p)
                or not isinstance(step, torch.Tensor)
                or step.device.type != "cpu"
                or step.numel() != 1
            ):
                _fitting_states.pop(optimizer, None)
                return False
    _fitting_states[optimizer] = tensors
    return True


def _like(tensor, parameter):
    return (
        isinstance(tensor, torch.Tensor)
        and tensor.shape == parameter.shape
        and tensor.dtype == parameter.dtype
        and tensor.device == parameter.device
    )


def adam_step(optimizer):
    """``optimizer.step()``, for a fit's fused Adam on the CPU without its wrapper.

    Around its fused kernel, ``Adam.step`` runs Python that costs about
    as much as the kernel itself on the default networks (hooks, profiling
    records, its checks and the grouping of the tensors by device and
    dtype, every step): with the direct call an epoch of the default
    auto-encoder on 60,000 images was 1.085x as fast (median of five
    paired rounds, ``benchmarks/bench_autoencoder.py --adam-step``, a
    2-core AMD machine at two threads). Where that step
    would do nothing else (:func:`_direct_adam_groups`), this makes the
    same two calls that it makes, with the same arguments in the same
    order: the step counts' increment, then ``torch._fused_adam_``: the
    weights and the optimiser's state come out bit for bit those of
    ``optimizer.step()``. Anything else (the first step, a GPU, another
    optimiser, a torch without the kernel) is ``optimizer.step()``.
    """
    kernel = getattr(torch, "_fused_adam_", None)
    calls = None if kernel is None else _direct_adam_groups(optimizer)
    if calls is None:
        optimizer.step()
        return
    for group, params, grads, exp_avgs, exp_avg_sqs, steps in calls:
        beta1, beta2 = group["betas"]
        torch._foreach_add_(steps, 1)
        kernel(
            params,
            grads,
            exp_avgs,
            exp_avg_sqs,
            [],
            steps,
            amsgrad=False,
            lr=group["lr"],
            beta1=beta1,
            beta2=beta2,
            weight_decay=group["weight_decay"],
            eps=group["eps"],
            maximize=False,
            grad_scale=None,
            found_inf=None,
        )


class DenseSquaredErrorStep:
    """The training step of a dense ReLU auto-encoder, written out by hand.

    For a network whose layers run ``Linear, ReLU, ..., Linear, Sigmoid``
    (the default :class:`~denoisenet.DenoisingAutoencoder`), with or without
    a ``BatchNorm1d`` between each hidden ``Linear`` and its ``ReLU``
    (``batch_norm=True``), and the mean squared error, on the CPU: the
    products and element-wise kernels that autograd runs for this network,
    in the same order (the weights after a fit came out bit for bit those
    of autograd's steps on Fashion-MNIST), but every activation, its
    gradient and every weight's gradient is written into tensors kept from
    one step to the next, and autograd records nothing. With batches of 128
    rows the network's products are small, and the rest of an autograd
    step (fresh tensors for every result, the graph's bookkeeping, a
    separate pass for the loss) took about a tenth of an epoch (one or two
    threads, 784-256-128-256-784). Batch normalisation runs torch's own
    kernels for its forward and backward passes (``native_batch_norm`` and
    its backward, which autograd runs too), updating the running statistics
    as the module would. The loss is taken as a dot product of the
    residuals, so its last bits may differ from ``mse_loss``'s. The
    optimiser is the fit's own, given the gradients as ``.grad`` for its
    step and then released: nothing but the weights, the running statistics
    and the optimiser's state outlives the step.

    One instance serves one fit; ``__call__`` returns None (autograd takes
    the step) for a network of another shape, off the CPU, when the batch
    has other dtypes, or, with batch normalisation, for a module in eval
    mode or a batch of one row.
    """

    def __init__(self):
        self._module = None
        # Per Linear layer: bias, weight, its transpose, the two gradients'
        # buffers and the BatchNorm1d after it (or None); () when the module
        # is not a dense ReLU auto-encoder. The weights are updated in
        # place, so the transposed views and the buffers stay valid from
        # step to step.
        self._plan = ()
        self._normalised = False  # whether any layer of the plan has one
        # rows -> (activations, gradients of activations, products before
        # batch normalisation: None for a layer without)
        self._buffers = {}

    @staticmethod
    def dense_layers(module):
        """The module's ``(Linear, BatchNorm1d or None)`` pairs, if its leaves
        run ``Linear, [BatchNorm1d,] ReLU, ..., Linear, Sigmoid`` in the
        order of its forward pass; else ()."""
        from denoisenet._networks import DenseAutoencoder

        if type(module) is not DenseAutoencoder:
            return ()
        leaves = [m for m in module.modules() if not any(m.children())]
        pairs, i = [], 0
        while i < len(leaves):
            if type(leaves[i]) is not torch.nn.Linear:
                return ()
            layer, norm = leaves[i], None
            if i + 1 < len(leaves) and type(leaves[i + 1]) is torch.nn.BatchNorm1d:
                norm = leaves[i + 1]
                i += 1
                if not (
                    norm.affine and norm.track_running_stats and norm.momentum
                ):  # the module's own defaults, which the estimator builds
                    return ()
            activation = leaves[i + 1] if i + 1 < len(leaves) else None
            i += 2
            last = i >= len(leaves)
            wanted = torch.nn.Sigmoid if last else torch.nn.ReLU
            if type(activation) is not wanted or (last and norm is not None):
                return ()
            pairs.append((layer, norm))
        return tuple(pairs)

    def _bind(self, module):
        if module is not self._module:
            self._module = module
            self._buffers = {}
            self._plan = [
                (
                    layer.bias,
                    layer.weight,
                    layer.weight.t(),
                    torch.empty_like(layer.weight),
                    torch.empty_like(layer.bias),
                    norm,
                )
                for layer, norm in self.dense_layers(module)
            ]
            self._normalised = any(entry[5] is not None for entry in self._plan)
        return self._plan

    def _buffers_for(self, rows, like):
        buffers = self._buffers.get(rows)
        if buffers is None:
            widths = [entry[1].shape[0] for entry in self._plan]
            buffers = (
                [like.new_empty((rows, w)) for w in widths],
                [like.new_empty((rows, w)) for w in widths],
                [
                    None if entry[5] is None else like.new_empty((rows, w))
                    for entry, w in zip(self._plan, widths, strict=True)
                ],
            )
            # The full batch and one other size (the last batch of an epoch).
            if len(self._buffers) >= 2:
                self._buffers.pop(next(iter(reversed(self._buffers))))
            self._buffers[rows] = buffers
        return buffers

    def __call__(self, module, optimizer, inputs, targets):
        plan = self._bind(module)
        if not plan:
            return None
        weight = plan[0][1]
        if (
            inputs.device.type != "cpu"
            or weight.device.type != "cpu"
            or not inputs.dtype == targets.dtype == weight.dtype
            or inputs.dim() != 2
            or (
                self._normalised
                # Batch statistics need two rows, and a module in eval mode
                # would normalise with its running statistics instead.
                and (inputs.shape[0] < 2 or not module.training)
            )
        ):
            return None
        buffers, deltas, products = self._buffers_for(inputs.shape[0], inputs)
        activations = list(buffers)
        normalised = {}  # layer -> (its product, the batch's mean and 1/std)
        last = len(plan) - 1
        with torch.no_grad():
            h = inputs
            for k in range(last):
                bias, _, weight_t, _, _, norm = plan[k]
                if norm is None:
                    h = torch.addmm(bias, h, weight_t, out=activations[k]).relu_()
                    continue
                z = torch.addmm(bias, h, weight_t, out=products[k])
                h, mean, invstd = torch.native_batch_norm(
                    z,
                    norm.weight,
                    norm.bias,
                    norm.running_mean,
                    norm.running_var,
                    True,
                    norm.momentum,
                    norm.eps,
                )
                norm.num_batches_tracked.add_(1)
                normalised[k] = (z, mean, invstd)
                activations[k] = h.relu_()
            bias, _, weight_t, _, _, _ = plan[last]
            output = torch.addmm(bias, h, weight_t, out=activations[last]).sigmoid_()
            # d(loss)/d(pre-sigmoid) = 2 (output - target) / n * output (1 - output)
            delta = torch.sub(output, targets, out=deltas[last])
            flat = delta.view(-1)
            n = flat.numel()
            loss = torch.dot(flat, flat).div_(n)
            delta.mul_(2.0 / n)
            _sigmoid_backward(delta, output, grad_input=delta)
            norm_grads = []
            for k in range(last, 0, -1):
                _, weight, _, weight_grad, bias_grad, _ = plan[k]
                below = activations[k - 1]
                torch.mm(delta.t(), below, out=weight_grad)
                torch.sum(delta, 0, out=bias_grad)
                delta = torch.mm(delta, weight, out=deltas[k - 1])
                _threshold_backward(delta, below, 0, grad_input=delta)
                norm = plan[k - 1][5]
                if norm is not None:
                    z, mean, invstd = normalised[k - 1]
                    delta, scale_grad, shift_grad = _batch_norm_backward(
                        delta,
                        z,
                        norm.weight,
                        norm.running_mean,
                        norm.running_var,
                        mean,
                        invstd,
                        True,
                        norm.eps,
                        [True, True, True],
                    )
                    norm_grads.append((norm, scale_grad, shift_grad))
            _, _, _, weight_grad, bias_grad, _ = plan[0]
            torch.mm(delta.t(), inputs, out=weight_grad)
            torch.sum(delta, 0, out=bias_grad)
        for bias, weight, _, weight_grad, bias_grad, _ in plan:
            weight.grad, bias.grad = weight_grad, bias_grad
        for norm, scale_grad, shift_grad in norm_grads:
            norm.weight.grad, norm.bias.grad = scale_grad, shift_grad
        try:
            adam_step(optimizer)
        finally:
            for bias, weight, *_ in plan:
                weight.grad = bias.grad = None
            for norm, _, _ in norm_grads:
                norm.weight.grad = norm.bias.grad = None
        return loss


_sigmoid_backward = torch.ops.aten.sigmoid_backward.grad_input
_threshold_backward = torch.ops.aten.threshold_backward.grad_input
_batch_norm_backward = torch.ops.aten.native_batch_norm_backward


# The switch for the GPU path: on a CUDA device, the training step of full
# batches is captured once in a CUDA graph and replayed (see _Stepper).
CUDA_GRAPHS = True
# Eager steps on full batches before the capture: the first calls of a
# kernel set up state (cuBLAS handles, autograd's buffers) that a capture
# must not see being made.
GRAPH_WARMUP_STEPS = 3


class _Stepper:
    """:func:`train_step` for one fit, its full batches replayed from a graph.

    A small network on a GPU is bound by kernel launches: a step is a few
    dozen short kernels (noise, forward, loss, backward, Adam), each
    launched from Python. On a CUDA device (``capture="cuda"``) the step of
    a full batch is captured once, after :data:`GRAPH_WARMUP_STEPS` eager
    steps, in a :class:`torch.cuda.CUDAGraph`; every later batch of the same
    shapes is copied into the graph's own input tensors and the graph is
    replayed: one launch a step. The noise generator's state is registered
    with the graph, so replays draw fresh noise, and a refit replays the
    same kernels in the same order: bit-identical, as eager steps are.

    Eager steps remain for what a graph cannot hold: a batch of other
    shapes (the last, short batch of an epoch) and a torch without
    graph-safe custom generators. (Batches of neighbour pairs carry their
    graph as a fixed-size adjacency, so that they are replayed too.) A
    change of the learning rate (``"adaptive"``) captures the step again,
    since the graph holds the rate it was captured with. Should a capture
    fail, the fit goes on with eager steps.

    ``capture="static"`` runs the same path (the copies into the static
    tensors, warm-up, recapture) without a graph, on any device: what the
    tests can check on a machine without a GPU. ``capture=None`` is a plain
    :func:`train_step` every batch.
    """

    def __init__(self, module, optimizer, objective, generator, capture):
        self.module = module
        self.optimizer = optimizer
        self.objective = objective
        self.generator = generator
        self.capture = capture
        self.signature = None  # the shapes of the batches that are replayed
        self.static = None  # the replayed step's input tensors
        self.replay = None  # runs the captured step; None: not captured
        self.loss = None  # the replayed step's loss
        self.rates = None  # the learning rates the step was captured with
        self.warm_steps = 0
        self.captures = 0

    @classmethod
    def for_fit(cls, module, optimizer, objective, generator, device):
        device = torch.device(device)
        graphs = CUDA_GRAPHS and device.type == "cuda" and _graph_safe(objective)
        return cls(module, optimizer, objective, generator, "cuda" if graphs else None)

    def __call__(self, batch):
        if self.capture is None or not self._replayable(batch):
            return self._step_on(batch)
        rates = tuple(group["lr"] for group in self.optimizer.param_groups)
        if self.replay is not None and rates != self.rates:
            self.replay = None
        if self.static is None:
            self.static = [None if t is None else t.clone() for t in batch]
        else:
            for mine, given in zip(self.static, batch, strict=True):
                if mine is not None:
                    mine.copy_(given)
        if self.replay is None:
            if self.warm_steps < GRAPH_WARMUP_STEPS:
                self.warm_steps += 1
                return self._warm_up()
            if not self._capture(rates):
                return self._step_on(batch)
        self.replay()
        return self.loss

    def _replayable(self, batch):
        signature = tuple(None if t is None else (t.shape, t.dtype) for t in batch)
        if self.signature is None:
            self.signature = signature
        return signature == self.signature

    def _step_on(self, batch):
        """An eager step (``train_step`` looked up at the call: tests wrap it)."""
        return train_step(
            self.module, self.optimizer, self.objective, batch, self.generator
        )

    def _step_on_static(self):
        return self._step_on(self.static)

    def _warm_up(self):
        if self.capture != "cuda":
            return self._step_on_static()
        # On a side stream, as a capture runs (PyTorch's CUDA graph recipe).
        stream = torch.cuda.Stream()
        stream.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(stream):
            loss = self._step_on_static()
        torch.cuda.current_stream().wait_stream(stream)
        return loss

    def _capture(self, rates):
        """Capture the step on the static tensors; False when that failed."""
        self.captures += 1
        self.rates = rates
        if self.capture != "cuda":
            self.replay = self._seam_replay
            return True
        self.optimizer.zero_grad(set_to_none=True)
        try:
            graph = torch.cuda.CUDAGraph()
            if self.objective.corrupt is not None:
                graph.register_generator_state(self.generator)
            with torch.cuda.graph(graph):
                self.loss = self._step_on_static()
        except RuntimeError:
            # Nothing ran during the capture: the weights, Adam's state and
            # the generator are as they were; go on without a graph.
            self.capture = None
            self.optimizer.zero_grad(set_to_none=True)
            return False
        self.replay = graph.replay
        return True

    def _seam_replay(self):
        self.loss = self._step_on_static()


def _graph_safe(objective):
    """Whether a CUDA graph can replay the objective's step.

    A step that draws noise needs the graph to advance the noise
    generator at every replay, which torch offers for generators other
    than the default one only in versions that have
    ``CUDAGraph.register_generator_state``.
    """
    return objective.corrupt is None or hasattr(
        torch.cuda.CUDAGraph, "register_generator_state"
    )


def _batches(data, batch_size, shuffle, generator, device, min_rows=1):
    """Yield (inputs, targets, weights) on ``device``, one batch at a time.

    With a neighbour graph (``data.neighbors``), the ``batch_size`` rows of
    a batch are *anchors*, each followed by one of its graph neighbours,
    drawn at random (the anchor itself when it has none): a batch then
    always holds pairs of near rows, which random batches of a large data
    set almost never do, while the number of steps, and the independent
    rows of each, stay those of plain batches. Such batches come with a
    fourth element, the graph's adjacency between their first
    ``data.pair_rows`` rows (:func:`_adjacency`): a tensor of one shape for
    every full batch, however many edges it holds.
    """
    indices = data.indices
    if shuffle:
        indices = indices[
            torch.randperm(len(indices), generator=generator, device="cpu")
        ]
    if data.neighbors is not None:
        yield from _paired_batches(data, indices, batch_size, generator, device)
        return
    # The rows are gathered where the data lives (the host, or the GPU when
    # the estimator put the whole data set there) and then moved.
    indices = indices.to(data.X.device)
    starts = list(range(0, len(indices), batch_size))
    if len(starts) > 1 and len(indices) - starts[-1] < min_rows:
        # A last batch that is too small joins the one before: batch
        # normalisation cannot normalise a single row.
        starts.pop()
    for start, stop in itertools.pairwise([*starts, len(indices)]):
        yield _batch(data, indices[start:stop], device)


def _batch(data, rows, device):
    """(inputs, targets, weights) of ``rows`` (on the data's device), on ``device``."""
    targets, weights = (
        None if t is None else t.index_select(0, rows).to(device, non_blocking=True)
        for t in (data.targets, data.weights)
    )
    return data.inputs(rows, device), targets, weights


def _paired_batches(data, indices, batch_size, generator, device):
    """The batches of :func:`_batches` for data with a neighbour graph."""
    table = data.neighbors
    for anchors in indices.cpu().split(batch_size):
        candidates = table.index_select(0, anchors)
        # The graph pads with -1 at the end of a row (a class with fewer
        # rows than neighbours); the draw is among the real ones.
        found = (candidates >= 0).sum(1)
        draw = torch.rand(
            len(anchors), generator=generator, dtype=torch.float32, device="cpu"
        )
        pick = (draw * found).long().clamp_(max=table.shape[1] - 1)
        partners = candidates.gather(1, pick[:, None])[:, 0].long()
        partners = torch.where(partners < 0, anchors, partners)
        rows = torch.stack([anchors, partners], 1).reshape(-1)
        covered = len(rows) if data.pair_rows is None else data.pair_rows
        adjacency = _adjacency(_edges_within(table, rows), min(len(rows), covered))
        yield *_batch(data, rows.to(data.X.device), device), adjacency.to(device)


def _edges_within(table, rows):
    """The graph's edges between a batch's rows, as positions in ``rows``.

    Returns a (2, n_edges) tensor: ``rows[i]`` has ``rows[j]`` among its
    neighbours in ``table`` for every column (i, j): the drawn pairs, and
    any other edge that the batch happens to hold. Memory is that of the
    batch's rows of ``table``, however large the batch. (A row that occurs
    twice in a batch is found at one of its places.)
    """
    order = rows.argsort()
    ordered = rows[order]
    neighbours = table.index_select(0, rows).long()  # (n, k), -1 pads
    at = torch.searchsorted(ordered, neighbours).clamp_(max=len(rows) - 1)
    found = (ordered[at] == neighbours) & (neighbours >= 0)
    source, slot = found.nonzero(as_tuple=True)
    return torch.stack([source, order[at[source, slot]]])


def _adjacency(edges, n):
    """The (n, n) boolean adjacency of the ``edges`` between the first n rows."""
    inside = (edges < n).all(0)
    adjacency = torch.zeros((n, n), dtype=torch.bool, device=edges.device)
    adjacency[edges[0, inside], edges[1, inside]] = True
    return adjacency


class _Checked:
    """``step`` with ``check()`` called before every step."""

    def __init__(self, step, check):
        self.step, self.check = step, check

    def __call__(self, batch):
        self.check()
        return self.step(batch)


def run_epoch(module, optimizer, objective, data, schedule, shuffle, device, step):
    """One pass over the training rows; returns the mean loss per row.

    ``shuffle`` is the generator of the order of the rows; ``step(batch)``
    takes one optimiser step (a :class:`_Stepper`, which holds the noise
    generator).
    """
    module.train()
    total = torch.zeros((), dtype=torch.float32, device=device)
    seen = 0
    for batch in _batches(
        data,
        schedule.batch_size,
        schedule.shuffle,
        shuffle,
        device,
        schedule.min_batch_rows,
    ):
        loss = step(batch)
        total += loss * batch[0].shape[0]
        seen += batch[0].shape[0]
    return float(total) / max(seen, 1)


def _record(history, loss, score, tol):
    """Append an epoch to ``history``; return True when it is the best so far."""
    history.loss_curve.append(loss)
    history.n_iter += 1
    if history.validation_scores is not None:
        history.validation_scores.append(score)
        stalled = score < history.best_validation_score + tol
        improved = score > history.best_validation_score
        if improved:
            history.best_validation_score = score
    else:
        stalled = loss > history.best_loss - tol
        improved = loss < history.best_loss
        if improved:
            history.best_loss = loss
    history.no_improvement_count = history.no_improvement_count + 1 if stalled else 0
    return improved


# "adaptive": the learning rate is divided by this when training stalls ...
LEARNING_RATE_DECAY = 5.0
# ... until it is this fraction of learning_rate_init; then training stops.
SMALLEST_LEARNING_RATE = 1e-2


def _patience(schedule):
    """Stalled epochs before "adaptive" divides the learning rate.

    Half of those that would stop training at a constant rate (rounded up;
    6 for the default ``n_iter_no_change=10``): waiting the whole
    ``n_iter_no_change + 1`` before every division, as scikit-learn's SGD
    does, spends most of a fit on large data in stalls; on Fashion-MNIST's
    60,000 images the half rule stops in 50-69 epochs
    (benchmarks/bench_defaults.py --data fm).
    """
    return math.ceil((schedule.n_iter_no_change + 1) / 2)


def _stalled(history, schedule):
    """Whether the run has stalled long enough to act (decay or stop)."""
    if schedule.learning_rate == "adaptive" and not history.annealed:
        return history.no_improvement_count >= _patience(schedule)
    return history.no_improvement_count > schedule.n_iter_no_change


def _decay(optimizer, history, schedule):
    """Divide the learning rate on a stall; False when training should stop.

    With ``learning_rate="adaptive"`` (scikit-learn's rule for SGD, applied
    to Adam's step size, with half its patience), a stall of
    ``_patience(schedule)`` epochs divides the rate by 5, and training goes
    on; once the rate has reached a hundredth of its initial value, a stall
    of more than ``n_iter_no_change`` epochs ends training.
    """
    if schedule.learning_rate != "adaptive" or history.annealed:
        return False
    for group in optimizer.param_groups:
        group["lr"] /= LEARNING_RATE_DECAY
    history.lr_scale /= LEARNING_RATE_DECAY
    history.annealed = history.lr_scale <= SMALLEST_LEARNING_RATE
    history.no_improvement_count = 0
    return True


def _snapshot(module, optimizer):
    return copy.deepcopy(module.state_dict()), copy.deepcopy(optimizer.state_dict())


def _restore(module, optimizer, snapshot):
    module.load_state_dict(snapshot[0])
    optimizer.load_state_dict(snapshot[1])


def _keep_interrupted(epoch, history):
    """Ctrl-C after ``epoch`` completed epochs: warn, and record it."""
    warnings.warn(
        f"Training interrupted by the user after {epoch} epoch(s); "
        "keeping the weights of the last completed epoch.",
        UserWarning,
        stacklevel=outside_stacklevel(),
    )
    history.interrupted = True


def _validate(module, objective, data):
    module.eval()
    with torch.no_grad():
        return float(objective.validation_score(module, data.X_val, data.targets_val))


def train(
    module,
    optimizer,
    objective,
    data,
    schedule,
    history,
    generators,
    device,
    *,
    epoch_end=None,
    threads=None,
):
    """Train ``module`` in place for up to ``schedule.max_epochs`` epochs.

    Stops early, as scikit-learn's MLP does, once the training loss (or,
    with early stopping, the validation score) has not improved by ``tol``
    for ``n_iter_no_change`` epochs; with early stopping the best weights
    are restored. Ctrl-C keeps the last completed epoch, warns and sets
    ``history.interrupted`` (or, when no epoch was completed, restores the
    weights and re-raises). A non-finite loss raises
    :class:`NonFiniteLossError`. ``epoch_end(module, optimizer, history)``, if given,
    runs after every epoch and stops training by returning True.
    ``threads``, if given, is a context manager entered for the whole loop
    whose ``check()`` runs before every epoch and every step (a thread
    count that follows the machine's load). Returns ``history``.
    """
    early_stopping = schedule.early_stopping and data.X_val is not None
    # A warm-start call that continues early stopping starts from the best
    # weights of the earlier calls (each restores them at its end); they
    # stay the best unless an epoch of this call beats their score, as in
    # scikit-learn's MLP.
    best = (
        copy.deepcopy(module.state_dict())
        if early_stopping and history.validation_scores
        else None
    )
    step = _Stepper.for_fit(module, optimizer, objective, generators[1], device)
    progress = _Progress(schedule.max_epochs, schedule.verbose)
    held = contextlib.ExitStack()
    try:
        if threads is not None:
            held.enter_context(threads)
            step = _Checked(step, threads.check)
        for epoch in range(schedule.max_epochs):
            # An epoch is complete once its loss (and validation score) is
            # recorded. Ctrl-C before that (in the snapshot, the batches or
            # the validation pass) puts the weights back as they were after
            # the previous epoch; after it (progress, callbacks, the
            # schedule), the epoch is kept as it is.
            last = None
            try:
                last = _snapshot(module, optimizer)
                if threads is not None:
                    threads.check()
                loss = run_epoch(
                    module,
                    optimizer,
                    objective,
                    data,
                    schedule,
                    generators[0],
                    device,
                    step,
                )
                if not math.isfinite(loss):
                    raise NonFiniteLossError(
                        f"The training loss became {loss} in epoch "
                        f"{history.n_iter + 1}. {objective.advice}"
                    )
                score = _validate(module, objective, data) if early_stopping else None
            except KeyboardInterrupt:
                if last is not None:
                    _restore(module, optimizer, last)
                if epoch == 0:
                    raise
                _keep_interrupted(epoch, history)
                break
            try:
                if _record(history, loss, score, schedule.tol) and early_stopping:
                    best = copy.deepcopy(module.state_dict())
                progress.update(history)
                if epoch_end is not None and epoch_end(module, optimizer, history):
                    break
                if _stalled(history, schedule) and not _decay(
                    optimizer, history, schedule
                ):
                    break
            except KeyboardInterrupt:
                _keep_interrupted(epoch + 1, history)
                break
        else:
            if schedule.warn_on_max_iter:
                warnings.warn(
                    f"Maximum iterations ({schedule.max_epochs}) reached and the "
                    "optimization hasn't converged yet.",
                    ConvergenceWarning,
                    stacklevel=outside_stacklevel(),
                )
    finally:
        held.close()
        progress.close()
    if best is not None:
        module.load_state_dict(best)
    return history


class _Progress:
    """A tqdm bar over epochs when tqdm is installed, else a line per epoch."""

    def __init__(self, total, verbose):
        self.bar = None
        self.verbose = verbose
        if not verbose:
            return
        try:
            from tqdm.auto import tqdm
        except ImportError:
            return
        self.bar = tqdm(total=total, unit="epoch", leave=True)

    def update(self, history):
        if not self.verbose:
            return
        values = {"loss": f"{history.loss_curve[-1]:.4g}"}
        if history.validation_scores:
            values["validation"] = f"{history.validation_scores[-1]:.4g}"
        if self.bar is not None:
            self.bar.set_postfix(values, refresh=False)
            self.bar.update(1)
        else:
            shown = ", ".join(f"{k} = {v}" for k, v in values.items())
            print(f"Iteration {history.n_iter}, {shown}", flush=True)

    def close(self):
        if self.bar is not None:
            self.bar.close()
