"""The table of the specs, from the analysis: `python -m tests.zoo_table` prints it; tests/test_zoo_table.py
checks that the zoo page (docs/zoo/index.md) shows these figures (counts and MACs as `archc summary` gives them).

What each row is checked against is said here once; the checks themselves are tests/test_torchvision.py
(torchvision's model and the generated ones compute the same logits from torchvision's state_dict),
tests/test_core_reference.py (counts and MACs against torchvision / keras.applications, read live), and
tests/test_keras_applications.py and tests/test_keras_specs_mobile.py (keras.applications), tests/test_zoo_ranks.py
(the video ResNets, Inception-ResNet-v2 and the hand-written references of tests/references/).
"""

from __future__ import annotations

from pathlib import Path

from archc.analysis import analyze
from archc.pipeline import compile_spec

ROOT = Path(__file__).resolve().parents[1]
TV = "torchvision `{}`: counts, MACs, logits from its state_dict"
KA = "keras.applications `{}`: counts"
KAW = "keras.applications `{}`: counts, logits from its weights by the mapping"
REF = "a PyTorch module written by hand from the paper (tests/references/{}): counts, outputs"

# spec stem -> (what it reproduces, what it is checked against)
ROWS = {
    "alexnet": ("AlexNet (torchvision's one-GPU layout)", TV.format("alexnet")),
    "convnext_tiny": ("ConvNeXt-T", TV.format("convnext_tiny") + "; " + KAW.format("ConvNeXtTiny")),
    "densenet121": (
        "DenseNet-121 (keras.applications' BN epsilon 1.001e-5)",
        TV.format("densenet121") + "; " + KA.format("DenseNet121"),
    ),
    "densenet161": ("DenseNet-161", TV.format("densenet161")),
    "densenet169": ("DenseNet-169", TV.format("densenet169") + "; " + KA.format("DenseNet169")),
    "densenet201": ("DenseNet-201", TV.format("densenet201") + "; " + KA.format("DenseNet201")),
    **{f"efficientnet_b{i}": (f"EfficientNet-B{i}", TV.format(f"efficientnet_b{i}")) for i in range(8)},
    "efficientnet_b0_keras": (
        "EfficientNet-B0, keras.applications' layout (its Rescaling + Normalization are preprocessing)",
        KAW.format("EfficientNetB0"),
    ),
    "googlenet": (
        "the paper's GoogLeNet (5x5 branches) with conv-BN-ReLU, aux heads (`--set aux=false`: 7,005,832)",
        "no framework builds it (torchvision's layout has 3x3 kernels in the 5x5 branches)",
    ),
    "googlenet_torchvision": (
        "torchvision's GoogLeNet layout, aux heads (`--set aux=false`: 6,624,904)",
        TV.format("googlenet"),
    ),
    "inception_v3": ("Inception-v3 (`--set aux=true`: the aux head, 27,161,264 params)", TV.format("inception_v3")),
    "inception_v3_keras": (
        "Inception-v3, keras.applications' layout (BN without scale, pools leave the padding out)",
        KA.format("InceptionV3") + ", logits from its weights files",
    ),
    "mobilenet_v1": ("MobileNet, alpha 1.0, 224", KA.format("MobileNet")),
    "mobilenet_v1_025_160": ("MobileNet, alpha 0.25, 160", KA.format("MobileNet(alpha=0.25)")),
    "mobilenet_v1_050": ("MobileNet, alpha 0.5", KA.format("MobileNet(alpha=0.5)")),
    "mobilenet_v2": ("MobileNetV2", TV.format("mobilenet_v2")),
    "mobilenet_v2_keras": ("MobileNetV2, keras.applications' layout (alpha by `--set`)", KAW.format("MobileNetV2")),
    "mobilenet_v3_large": ("MobileNetV3-Large", TV.format("mobilenet_v3_large")),
    "mobilenet_v3_large_keras": (
        "MobileNetV3-Large, keras.applications' layout",
        KAW.format("MobileNetV3Large(include_preprocessing=False)"),
    ),
    "mobilenet_v3_small": ("MobileNetV3-Small", TV.format("mobilenet_v3_small")),
    "mobilenet_v3_small_keras": (
        "MobileNetV3-Small, keras.applications' layout",
        KAW.format("MobileNetV3Small(include_preprocessing=False)"),
    ),
    "regnet_x_400mf": ("RegNetX-400MF", TV.format("regnet_x_400mf")),
    "regnet_y_400mf": ("RegNetY-400MF", TV.format("regnet_y_400mf")),
    "resnet18": ("ResNet-18", TV.format("resnet18")),
    "resnet34": ("ResNet-34", TV.format("resnet34")),
    "resnet50": ("ResNet-50 v1.5 (stride on the 3x3)", TV.format("resnet50")),
    "resnet50_keras": (
        "ResNet-50 v1 (stride on the first 1x1, conv biases)",
        KA.format("ResNet50") + ", logits from its weights files",
    ),
    "resnet101": ("ResNet-101", TV.format("resnet101")),
    "resnet152": ("ResNet-152", TV.format("resnet152")),
    "resnext50_32x4d": ("ResNeXt-50 32x4d", TV.format("resnext50_32x4d")),
    "shufflenet_v2_x1_0": ("ShuffleNetV2 1.0x (0.5x by `--set`)", TV.format("shufflenet_v2_x1_0")),
    "squeezenet1_1": ("SqueezeNet 1.1", TV.format("squeezenet1_1")),
    "vgg11": ("VGG-11", TV.format("vgg11")),
    "vgg16": ("VGG-16", TV.format("vgg16") + "; " + KAW.format("VGG16")),
    "vgg16_bn": ("VGG-16 with BN", TV.format("vgg16_bn")),
    "vgg19": ("VGG-19", TV.format("vgg19") + "; " + KA.format("VGG19") + ", names by the mapping"),
    "wide_resnet50_2": ("Wide ResNet-50-2", TV.format("wide_resnet50_2")),
    # beyond 2-D classifiers: 1-D, 3-D, transposed convolutions, constant scales
    "m5": ("M5, raw-waveform 1-D CNN (Dai et al. 2017, Table 1)", REF.format("m5.py")),
    "r3d_18": ("R3D-18 video ResNet, 3-D (clips T x H x W)", TV.format("r3d_18")),
    "mc3_18": ("MC3-18 video ResNet (3-D convs in layer1, 1x3x3 above)", TV.format("mc3_18")),
    "r2plus1d_18": ("R(2+1)D-18 video ResNet ((2+1)D convs)", TV.format("r2plus1d_18")),
    "dcgan_generator": ("DCGAN generator (Radford et al. 2016): (1, 1, 100) -> (64, 64, 3)", REF.format("dcgan.py")),
    "conv_autoencoder": ("a convolutional autoencoder (28 x 28, transposed convs up)", REF.format("autoencoder.py")),
    "inception_resnet_v2": (
        "Inception-ResNet-v2, keras.applications' layout (residuals scaled by 0.17, 0.1, 0.2)",
        KAW.format("InceptionResNetV2"),
    ),
    # graphs: skips by name (`from:`), several outputs
    "unet": (
        "U-Net (Ronneberger et al. 2015), 'same'-padding BN variant; each skip one `from:`",
        REF.format("unet.py"),
    ),
    "fcn_resnet50": (
        "FCN-ResNet50: dilated stages, FCNHead, resized to the input (a dict `out`)",
        TV.format("fcn_resnet50") + " (segmentation, at two sizes)",
    ),
    "deeplabv3_resnet50": (
        "DeepLabV3-ResNet50: ASPP, its image pooling resized `like:` its input",
        TV.format("deeplabv3_resnet50") + " (segmentation, at two sizes)",
    ),
    "deeplabv3_mobilenet_v3_large": (
        "DeepLabV3-MobileNetV3-Large: the last stage dilated, ASPP",
        TV.format("deeplabv3_mobilenet_v3_large") + " (segmentation, at two sizes)",
    ),
    "lraspp_mobilenet_v3_large": (
        "LR-ASPP-MobileNetV3-Large: two taps of the backbone (`from:`), a gated high branch resized `like:` the low",
        TV.format("lraspp_mobilenet_v3_large") + " (segmentation, at two sizes)",
    ),
    "resnet50_fpn": (
        "ResNet-50-FPN, the detectors' backbone: outputs '0'..'3', 'pool'",
        'torchvision\'s `resnet_fpn_backbone("resnet50")`: counts, the five outputs from its state_dict',
    ),
}


def torchvision_builder(stem: str) -> str | None:
    """The torchvision builder a row is checked against (None: not a torchvision model)."""
    ref = ROWS[stem][1]
    return ref.split("`")[1] if ref.startswith("torchvision `") else None


HEADER = (
    "| spec | reproduces | trainable | non-trainable | MACs | checked against |\n"
    "| --- | --- | ---: | ---: | ---: | --- |"
)


def macs(n: int) -> str:
    return f"{n / 1e9:.3f} G"


def main_macs(model, report) -> int:
    """MACs of the main output alone (auxiliary heads are not run in eval, nor counted by torchvision's ``_ops``)."""
    heads = {h.name for h in model.heads}
    return report.macs - sum(row.macs for row in report.rows if row.path.split(".")[0] in heads)


def rows() -> list[str]:
    out = []
    for path in sorted((ROOT / "specs").glob("*.yaml")):
        what, ref = ROWS[path.stem]
        model = compile_spec(str(path))
        r = analyze(model)
        main = main_macs(model, r)
        out.append(f"| `{path.name}` | {what} | {r.trainable:,} | {r.non_trainable:,} | {macs(main)} | {ref} |")
    return out


def table() -> str:
    return "\n".join([HEADER, *rows()])


if __name__ == "__main__":
    print(table())
