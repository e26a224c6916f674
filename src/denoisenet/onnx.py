"""ONNX conversion of fitted estimators through skl2onnx.

Call :func:`register` once; after that :func:`skl2onnx.to_onnx` converts a
fitted :class:`~denoisenet.DenoisingAutoencoder` or
:class:`~denoisenet.BottleneckClassifier`, alone or inside a
:class:`~sklearn.pipeline.Pipeline`, like any scikit-learn estimator::

    import denoisenet.onnx
    from skl2onnx import to_onnx

    denoisenet.onnx.register()
    onx = to_onnx(pipe, X[:1].astype(np.float32))

The graph is written from the fitted network layer by layer (Gemm, Conv,
ConvTranspose and activations), behind the input scaling learned in fit,
so it needs no exporter of PyTorch. It computes in float32, as the
estimators do.

The noise transformers have no graph, by decision: they corrupt images at
random, which a deployed model must not do to the images it is given, and
ONNX's random operators cannot draw the noise that ``random_state``
promises, so a converted pipeline would not answer as the fitted one.
Converting a pipeline that holds one raises an error that says to convert
the pipeline without it (for instance ``pipe[1:]``).

skl2onnx, onnx and onnxruntime are optional: ``pip install
denoisenet[onnx]``. Importing this module needs none of them.
"""

import numbers

import numpy as np
from sklearn.utils.validation import check_is_fitted
from torch import nn

from denoisenet.autoencoder import DenoisingAutoencoder
from denoisenet.bottleneck import BottleneckClassifier
from denoisenet.noise import GaussianPixelNoise, MaskingNoise, SaltAndPepperNoise

__all__ = ["register"]

_ACTIVATIONS = {nn.ReLU: "Relu", nn.Tanh: "Tanh", nn.Sigmoid: "Sigmoid"}


def _skl2onnx():
    try:
        import skl2onnx
    except ImportError as exc:
        raise ImportError(
            "ONNX conversion needs skl2onnx, onnx and onnxruntime; install them "
            "with: pip install 'denoisenet[onnx]'"
        ) from exc
    return skl2onnx


def register():
    """Register denoisenet's converters with skl2onnx.

    After this call, :func:`skl2onnx.to_onnx` and
    :func:`skl2onnx.convert_sklearn` convert fitted estimators and pipelines
    that contain them. Calling it again does no harm.

    :class:`~denoisenet.DenoisingAutoencoder` converts to its
    ``transform``. :class:`~denoisenet.BottleneckClassifier` converts as a
    classifier (outputs ``label`` and ``probabilities``, with skl2onnx's
    usual ``zipmap`` option), or to its ``transform`` (the bottleneck map)
    with the option ``{"transform": True}``, which a classifier in the
    middle of a pipeline needs::

        to_onnx(pipe, X[:1], options={BottleneckClassifier: {"transform": True}})

    Noise transformers have no graph; converting a pipeline with one raises
    a RuntimeError.

    Raises
    ------
    ImportError
        When skl2onnx is not installed.
    """
    skl2onnx = _skl2onnx()
    skl2onnx.update_registered_converter(
        DenoisingAutoencoder,
        "DenoisenetDenoisingAutoencoder",
        _autoencoder_shape,
        _convert_autoencoder,
    )
    skl2onnx.update_registered_converter(
        BottleneckClassifier,
        "DenoisenetBottleneckClassifier",
        _classifier_shape,
        _convert_classifier,
        parser=_parse_classifier,
        options={
            "zipmap": [True, False, "columns"],
            "nocl": [False, True],
            "output_class_labels": [False, True],
            "transform": [False, True],
        },
    )
    for noise in (GaussianPixelNoise, SaltAndPepperNoise, MaskingNoise):
        skl2onnx.update_registered_converter(
            noise,
            f"Denoisenet{noise.__name__}",
            _refuse_noise_shape,
            _refuse_noise_conversion,
            parser=_refuse_noise,
        )


def _refuse_noise_shape(operator):
    _refuse_noise(None, operator.raw_operator, None)


def _refuse_noise_conversion(scope, operator, container):
    _refuse_noise(scope, operator.raw_operator, None)


def _refuse_noise(scope, model, inputs, custom_parsers=None):
    raise RuntimeError(
        f"{type(model).__name__} has no ONNX graph: it corrupts images at "
        "random, which a deployed model must not do to its input, and ONNX "
        "cannot draw the noise that random_state promises. Convert the "
        "pipeline without it, "
        "e.g. to_onnx(pipe[1:], X) when it is the first step."
    )


# -- shapes ---------------------------------------------------------------


def _float_type(shape):
    from skl2onnx.common.data_types import FloatTensorType

    return FloatTensorType(shape)


def _autoencoder_shape(operator):
    check_is_fitted(operator.raw_operator)
    n = operator.inputs[0].get_first_dimension()
    operator.outputs[0].type = _float_type([n, operator.raw_operator.n_features_in_])


def _classifier_shape(operator):
    # Fitted: _parse_classifier, which every classifier passes first, checks.
    if len(operator.outputs) == 1:  # the option transform=True
        n = operator.inputs[0].get_first_dimension()
        width = operator.raw_operator._code_width()
        operator.outputs[0].type = _float_type([n, width])
        return
    try:
        # Without skl2onnx's check of the input type, which refuses uint8
        # images: the graph scales any numeric input, as the estimator does.
        from skl2onnx.common.shape_calculator import (
            _calculate_linear_classifier_output_shapes as shapes,
        )

        shapes(operator, enable_type_checking=False)
    except ImportError:  # pragma: no cover - a skl2onnx without it
        from skl2onnx.common.shape_calculator import (
            calculate_linear_classifier_output_shapes,
        )

        calculate_linear_classifier_output_shapes(operator)
    # float32 whatever the input: the graph computes as the network does.
    operator.outputs[1].type = _float_type(operator.outputs[1].type.shape)


def _parse_classifier(scope, model, inputs, custom_parsers=None):
    # skl2onnx's own parser for classifiers (label, probabilities and the
    # zipmap options) has no public name; a custom parser replaces it for
    # every model of the class, so it is called for the classifier case.
    from skl2onnx._parse import _parse_sklearn_classifier

    # Before skl2onnx looks for classes_ ("No known ways to retrieve the
    # number of classes").
    check_is_fitted(model)
    options = scope.get_options(model, {"transform": False})
    if not options["transform"]:
        return _parse_sklearn_classifier(scope, model, inputs, custom_parsers)
    operator = scope.declare_local_operator("DenoisenetBottleneckClassifier", model)
    operator.inputs = inputs
    code = scope.declare_local_variable("bottleneck", _float_type([None, None]))
    operator.outputs.append(code)
    return operator.outputs


# -- converters -----------------------------------------------------------


def _convert_autoencoder(scope, operator, container):
    model = operator.raw_operator
    graph = _Graph(scope, container)
    x = graph.scaled_input(operator.inputs[0].full_name, model)
    y = graph.module(model.module_, x)
    y = graph.binary("Mul", y, graph.scalar(model.data_range_))
    graph.binary("Add", y, graph.scalar(model.data_min_), operator.outputs[0].full_name)


def _convert_classifier(scope, operator, container):
    model = operator.raw_operator
    graph = _Graph(scope, container)
    x = graph.scaled_input(operator.inputs[0].full_name, model)
    if len(operator.outputs) == 1:
        graph.module(model.module_.encoder, x, operator.outputs[0].full_name)
        return
    logits = graph.module(model.module_, x)
    label, probabilities = (v.full_name for v in operator.outputs)
    graph.node("Softmax", [logits], probabilities, axis=1)
    index = graph.node("ArgMax", [probabilities], axis=1, keepdims=0)
    # nocl (an option of skl2onnx's classifiers): labels are class indices.
    nocl = container.get_options(model, {"nocl": False})["nocl"]
    labels = np.arange(len(model.classes_)) if nocl else model.classes_
    classes = graph.constant(*_class_labels(labels))
    graph.node("Gather", [classes, index], label, axis=0)


def _class_labels(classes):
    """The ``classes_`` as an ONNX constant: int64 or strings."""
    from onnx import TensorProto

    if classes.dtype.kind in "OUS" and all(isinstance(c, str) for c in classes):
        return np.array([c.encode("utf-8") for c in classes]), TensorProto.STRING
    if all(
        isinstance(c, numbers.Integral | np.bool_) or float(c).is_integer()
        for c in classes
    ):
        if all(-(2**63) <= int(c) < 2**63 for c in classes):
            return classes.astype(np.int64), TensorProto.INT64
        # astype(np.int64) wrapped them around, silently.
        raise NotImplementedError(
            f"BottleneckClassifier's classes_ {classes.tolist()} include integers "
            "outside int64's range, which an ONNX label output cannot hold; fit "
            "on smaller integers or on strings."
        )
    raise NotImplementedError(
        f"BottleneckClassifier's classes_ {classes.tolist()} are neither integers "
        "nor strings, which an ONNX label output must be; fit on integer or "
        "string labels."
    )


class _Graph:
    """Appends nodes of one converter to skl2onnx's container."""

    def __init__(self, scope, container):
        self.scope, self.container = scope, container

    def name(self, seed):
        return self.scope.get_unique_variable_name(seed)

    def node(self, op_type, inputs, output=None, **attrs):
        output = output or self.name(op_type.lower())
        self.container.add_node(
            op_type,
            inputs,
            output,
            name=self.scope.get_unique_operator_name(op_type),
            **attrs,
        )
        return output

    def binary(self, op_type, a, b, output=None):
        return self.node(op_type, [a, b], output)

    def constant(self, values, onnx_type=None):
        from onnx import TensorProto

        values = np.asarray(values)
        name = self.name("init")
        if onnx_type is None:
            onnx_type = TensorProto.FLOAT
            values = values.astype(np.float32)
        self.container.add_initializer(
            name, onnx_type, list(values.shape), values.ravel().tolist()
        )
        return name

    def scalar(self, value):
        return self.constant(np.float32(value))

    def scaled_input(self, name, model):
        """``(X - data_min_) / data_range_`` in float32, as in the estimator."""
        from onnx import TensorProto

        x = self.node("Cast", [name], to=TensorProto.FLOAT)
        x = self.binary("Sub", x, self.scalar(model.data_min_))
        return self.binary("Div", x, self.scalar(model.data_range_))

    def module(self, module, x, output=None):
        """Nodes for a network of denoisenet._networks, in eval mode."""
        # The leaves in the order they were registered: every network of
        # denoisenet._networks runs its submodules one after the other in
        # that order (encoder, then decoder or head).
        layers = [m for m in module.modules() if not list(m.children())]
        for i, layer in enumerate(layers):
            x = self.layer(layer, x, output if i == len(layers) - 1 else None)
        return x

    def layer(self, layer, x, output=None):
        from onnx import TensorProto

        if isinstance(layer, nn.Linear):
            inputs = [x, self.weight(layer.weight), self.weight(layer.bias)]
            return self.node("Gemm", inputs, output, transB=1)
        if type(layer) in _ACTIVATIONS:
            return self.node(_ACTIVATIONS[type(layer)], [x], output)
        if isinstance(layer, nn.Identity | nn.Dropout):
            return self.node("Identity", [x], output)
        if isinstance(layer, nn.Flatten):
            return self.node("Flatten", [x], output, axis=1)
        if isinstance(layer, nn.Unflatten):
            shape = self.constant(
                np.array([-1, *layer.unflattened_size]), TensorProto.INT64
            )
            return self.node("Reshape", [x, shape], output)
        if isinstance(layer, nn.Conv2d | nn.ConvTranspose2d):
            return self.convolution(layer, x, output)
        if isinstance(layer, nn.BatchNorm1d | nn.BatchNorm2d):
            inputs = [x] + [
                self.weight(t)
                for t in (
                    layer.weight,
                    layer.bias,
                    layer.running_mean,
                    layer.running_var,
                )
            ]
            return self.node("BatchNormalization", inputs, output, epsilon=layer.eps)
        raise NotImplementedError(
            f"denoisenet.onnx cannot convert the layer {layer!r}; please report it."
        )

    def convolution(self, layer, x, output):
        attrs = {
            "kernel_shape": list(layer.kernel_size),
            "strides": list(layer.stride),
            "pads": [*layer.padding, *layer.padding],
        }
        op_type = "Conv"
        if isinstance(layer, nn.ConvTranspose2d):
            op_type = "ConvTranspose"
            attrs["output_padding"] = list(layer.output_padding)
        inputs = [x, self.weight(layer.weight), self.weight(layer.bias)]
        return self.node(op_type, inputs, output, **attrs)

    def weight(self, tensor):
        return self.constant(tensor.detach().cpu().numpy())
