"""The CRNN: parameter count, shapes, reference semantics, injection points."""

from __future__ import annotations

import dataclasses
import math

import pytest
import torch
from torch import nn

import sed.nn.model as sed_model
from sed.nn.model import CRNN, CRNNConfig, count_parameters

TINY = CRNNConfig(cnn_filters=(4, 8, 8), rnn_hidden=8, n_classes=3)


def test_default_model_has_reference_parameter_count_and_shapes():
    model = CRNN()
    assert count_parameters(model) == 1_112_420
    # docs/reference.md (CRNN) breakdown: conv 539,904; BN 1,248; gated-unit linears 71,536; BiGRU 494,592; heads 5,140.
    conv = sum(p.numel() for n, p in model.named_parameters() if ".conv." in n)
    bn = sum(p.numel() for n, p in model.named_parameters() if ".bn." in n)
    gate = sum(p.numel() for n, p in model.named_parameters() if ".gate." in n)
    gru = sum(p.numel() for p in model.rnn.parameters())
    heads = sum(p.numel() for p in model.heads.parameters())
    assert (conv, bn, gate, gru, heads) == (539_904, 1_248, 71_536, 494_592, 5_140)
    model.eval()
    with torch.no_grad():
        strong, weak = model(torch.randn(2, 628, 128))
    assert strong.shape == (2, 157, 10) and weak.shape == (2, 10)
    assert float(strong.min()) >= 0 and float(strong.max()) <= 1


def test_reference_quirks_are_the_defaults():
    model = CRNN()
    bns = [m for m in model.modules() if isinstance(m, nn.BatchNorm2d)]
    assert len(bns) == 7 and all(b.eps == 1e-3 and b.momentum == 0.99 for b in bns)
    assert sum(isinstance(m, nn.AvgPool2d) for m in model.modules()) == 7
    assert not any(isinstance(m, nn.MaxPool2d) for m in model.modules())
    gru = model.rnn.gru
    assert gru.hidden_size == 128 and gru.num_layers == 2 and gru.bidirectional and gru.dropout == 0


def _plain_reference_forward(model: CRNN, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """An unoptimised reading of docs/reference.md (CRNN), using the model's weights (eval mode)."""
    h = x.unsqueeze(1)
    for block in model.cnn.blocks:
        h = block.conv(h)
        h = block.bn(h)
        w = block.gate.linear.weight[:, :, 0, 0]
        b = block.gate.linear.bias
        lin = torch.einsum("bctf,dc->bdtf", h, w) + b[None, :, None, None]  # Linear over channels
        h = lin * torch.sigmoid(h)
        h = nn.functional.avg_pool2d(h, block.pool.kernel_size)
    h = h.squeeze(-1).permute(0, 2, 1)
    h, _ = model.rnn.gru(h)
    strong = torch.sigmoid(h @ model.heads.strong.weight.T + model.heads.strong.bias)
    att = torch.softmax(h @ model.heads.attention.weight.T + model.heads.attention.bias, dim=-1)
    att = torch.clamp(att, min=1e-7, max=1)
    weak = (strong * att).sum(1) / att.sum(1)
    return strong, weak


def test_model_matches_a_plain_reading_of_the_architecture():
    torch.manual_seed(0)
    model = CRNN(CRNNConfig(cnn_filters=(4, 8, 8, 8, 8, 8, 8), rnn_hidden=6, n_classes=4)).eval()
    # Give BN non-trivial running stats so the check covers them.
    for m in model.modules():
        if isinstance(m, nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 1.5)
    x = torch.randn(3, 628, 128)
    with torch.no_grad():
        s, w = model(x)
        rs, rw = _plain_reference_forward(model, x)
    assert torch.allclose(s, rs, atol=1e-5) and torch.allclose(w, rw, atol=1e-5)


@pytest.mark.parametrize("impl", ["bits", "torch"])
def test_train_mode_dropout_keeps_its_rate(impl):
    model = CRNN(dataclasses.replace(TINY, dropout_impl=impl))
    drop = model.cnn.blocks[0].dropout.train()
    torch.manual_seed(0)
    x = torch.ones(200_003, requires_grad=True)  # not a multiple of 8
    y = drop(x)
    kept = (y != 0).float()
    assert abs(float(kept.mean()) - 0.5) < 0.01
    assert torch.allclose(y[y != 0], torch.tensor(2.0))
    # independent elements: P(both neighbours kept) = 1/4
    assert abs(float((kept[1:] * kept[:-1]).mean()) - 0.25) < 0.01
    # gradient is the mask itself
    y.sum().backward()
    assert torch.equal(x.grad, y.detach())
    # eval mode is the identity; other rates keep their rate too
    assert torch.equal(drop.eval()(x), x)
    # channels-last 4-D activations (the CNN's layout) keep rate and layout
    x4 = torch.ones(4, 8, 50, 32).contiguous(memory_format=torch.channels_last).requires_grad_(True)
    y4 = drop.train()(x4)
    assert abs(float((y4 != 0).float().mean()) - 0.5) < 0.01
    assert y4.is_contiguous(memory_format=torch.channels_last)
    y4.sum().backward()
    assert torch.equal(x4.grad, y4.detach())
    other = sed_model.Dropout(0.2, impl).train()
    assert abs(float((other(torch.ones(100_000)) == 0).float().mean()) - 0.2) < 0.01


def test_tiny_model_and_injection_points():
    torch.manual_seed(0)
    model = CRNN(TINY).eval()
    x = torch.randn(2, 628, 128)
    out = model.run(x)
    assert set(out.activations) == {"input", "cnn", "rnn"}
    assert out.activations["cnn"].shape == (2, 157, 8 * 16)  # 3 blocks: 128 / 8 = 16 bins left
    assert out.activations["rnn"].shape == (2, 157, 16)
    # Running from the CNN output with no hook reproduces the full pass.
    again = model.run(out.activations["cnn"], start="cnn")
    assert torch.allclose(again.strong, out.strong)
    # A hook at `cnn` changes the outputs but not the input activation.
    hooked = model.run(x, hooks={"cnn": lambda h: h + 1.0})
    assert torch.equal(hooked.activations["input"], x)
    assert torch.equal(hooked.activations["cnn"], out.activations["cnn"])
    assert not torch.allclose(hooked.strong, out.strong)


@torch.no_grad()
def test_reference_initialisation_statistics():
    torch.manual_seed(0)
    model = CRNN()
    bn_weights = torch.cat([m.weight for m in model.modules() if isinstance(m, nn.BatchNorm2d)])
    assert abs(float(bn_weights.mean()) - 1.0) < 0.01 and abs(float(bn_weights.std()) - 0.02) < 0.005
    gate_w = torch.cat([blk.gate.linear.weight.flatten() for blk in model.cnn.blocks])
    assert abs(float(gate_w.std()) - 0.01) < 0.001
    w = model.rnn.gru.weight_hh_l0  # orthogonal blocks: W W^T = I for the square [3H, H] stack's rows? use Q^T Q
    eye = w.T @ w
    assert torch.allclose(eye, torch.eye(128) * eye.diagonal().mean(), atol=1e-4)


@torch.no_grad()
def test_torch_initialisation_is_pytorchs_default_not_the_reference():
    torch.manual_seed(0)
    model = CRNN(CRNNConfig(weight_init="torch"))
    bn_weights = torch.cat([m.weight for m in model.modules() if isinstance(m, nn.BatchNorm2d)])
    assert torch.equal(bn_weights, torch.ones_like(bn_weights))  # PyTorch: BN weight 1
    # the gated unit's 1x1 map: kaiming_uniform(a=sqrt 5) = U(-1/sqrt(fan_in), 1/sqrt(fan_in)), std 1/sqrt(3 c)
    gate = model.cnn.blocks[3].gate.linear.weight  # 128 -> 128
    assert abs(float(gate.std()) - 1 / math.sqrt(3 * 128)) < 0.005
    assert float(model.heads.strong.bias.abs().max()) > 0  # reference init zeroes biases
    with pytest.raises(ValueError, match="weight_init"):
        CRNN(CRNNConfig(weight_init="xavier"))
