"""The architectures odl's ONNX import is checked on (tests/torch/export_models.py), built in
PyTorch: torchvision's MobileNetV2, MobileNetV3-small and ResNet-18, and the two MLPerf Tiny
reference networks (EEMBC's image classification ResNet-8 and keyword spotting DS-CNN-S)
rewritten in PyTorch from their Keras originals, "same" padding included (asymmetric where
TensorFlow pads asymmetrically)."""
import torch
import torch.nn as nn


class ResidualStack(nn.Module):
    """One stack of the MLPerf Tiny ResNet-8: conv3x3-BN-ReLU-conv3x3-BN, plus the input
    (through a strided 1x1 projection when the stack halves the resolution), then ReLU."""

    def __init__(self, c_in, c_out, stride, keras_same=True):
        super().__init__()
        # Keras "same" with stride 2 on an even size pads one row/column at the bottom/right only
        asym = keras_same and stride == 2
        self.pad = nn.ZeroPad2d((0, 1, 0, 1)) if asym else nn.Identity()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 0 if asym else 1)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.shortcut = nn.Conv2d(c_in, c_out, 1, stride) if stride != 1 or c_in != c_out else nn.Identity()
        self.relu = nn.ReLU()

    def forward(self, x):
        y = self.relu(self.bn1(self.conv1(self.pad(x))))
        y = self.bn2(self.conv2(y))
        return self.relu(y + self.shortcut(x))


class ResNet8(nn.Module):
    """MLPerf Tiny image classification (CIFAR-10, 32x32x3): conv16-BN-ReLU, stacks of 16
    (identity shortcut), 32 and 64 (stride 2, 1x1 projection), 8x8 average pool, dense 10, softmax."""

    def __init__(self, n_classes=10):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 16, 3, 1, 1), nn.BatchNorm2d(16), nn.ReLU())
        self.stacks = nn.Sequential(ResidualStack(16, 16, 1), ResidualStack(16, 32, 2), ResidualStack(32, 64, 2))
        self.pool = nn.AvgPool2d(8)
        self.fc = nn.Linear(64, n_classes)

    def forward(self, x):
        x = self.pool(self.stacks(self.stem(x)))
        return torch.softmax(self.fc(torch.flatten(x, 1)), 1)


class DSCNN(nn.Module):
    """MLPerf Tiny keyword spotting DS-CNN-S (49x10x1 MFCC): conv 64 10x4 stride 2 ("same":
    4/5 rows, 1/1 columns of padding) BN ReLU, four depthwise-separable blocks (dw 3x3 BN ReLU,
    pw 1x1 64 BN ReLU), dropout, 25x5 average pool, dense 12, softmax."""

    def __init__(self, n_classes=12):
        super().__init__()
        layers = [nn.ZeroPad2d((1, 1, 4, 5)), nn.Conv2d(1, 64, (10, 4), 2), nn.BatchNorm2d(64), nn.ReLU(),
                  nn.Dropout(0.2)]
        for _ in range(4):
            layers += [nn.Conv2d(64, 64, 3, 1, 1, groups=64), nn.BatchNorm2d(64), nn.ReLU(),
                       nn.Conv2d(64, 64, 1), nn.BatchNorm2d(64), nn.ReLU()]
        layers += [nn.Dropout(0.4), nn.AvgPool2d((25, 5))]
        self.features = nn.Sequential(*layers)
        self.fc = nn.Linear(64, n_classes)

    def forward(self, x):
        return torch.softmax(self.fc(torch.flatten(self.features(x), 1)), 1)


class SmallResNet(nn.Module):
    """The Fashion-MNIST base of the transfer-learning benchmark (bench/torch_transfer.py):
    conv16 stride 2 (28 -> 14), residual stacks 16, 32 (stride 2, projection), 64 (stride 2,
    projection), global average pool, dense. The head odl adapts is the last dense layer."""

    def __init__(self, n_classes=8):
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(1, 16, 3, 2, 1), nn.BatchNorm2d(16), nn.ReLU())
        self.stacks = nn.Sequential(ResidualStack(16, 16, 1, False), ResidualStack(16, 32, 2, False),
                                    ResidualStack(32, 64, 2, False))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(64, n_classes)

    def features(self, x):
        return torch.flatten(self.pool(self.stacks(self.stem(x))), 1)

    def forward(self, x):
        return self.fc(self.features(x))
