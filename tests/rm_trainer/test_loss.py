import math

import torch

from rm_trainer.loss import pairwise_loss


def test_equal_rewards_give_ln2():
    """Equal rewards give loss ln 2, for preferences and ties alike."""
    r = torch.zeros(4)
    assert math.isclose(pairwise_loss(r, r).item(), math.log(2), rel_tol=1e-6)
    assert math.isclose(pairwise_loss(r, r, tie=torch.ones(4, dtype=torch.bool)).item(), math.log(2), rel_tol=1e-6)


def test_margin_increases_loss():
    """A margin asks for a larger gap, so the same rewards cost more."""
    chosen, rejected = torch.tensor([1.0, 0.5]), torch.tensor([0.0, 0.0])
    assert pairwise_loss(chosen, rejected, margin=torch.tensor([1.0, 1.0])) > pairwise_loss(chosen, rejected)


def test_loss_falls_as_the_chosen_reward_rises():
    """The Bradley-Terry loss is -log σ(r_c - r_r)."""
    loss = pairwise_loss(torch.tensor([2.0]), torch.tensor([0.5]))
    assert math.isclose(loss.item(), -math.log(1 / (1 + math.exp(-1.5))), rel_tol=1e-6)


def test_tie_target_is_one_half():
    """A tie is fitted with target 0.5: its loss is smallest at equal rewards and symmetric."""
    tie = torch.tensor([True])
    at_zero = pairwise_loss(torch.tensor([0.0]), torch.tensor([0.0]), tie=tie)
    ahead = pairwise_loss(torch.tensor([1.0]), torch.tensor([0.0]), tie=tie)
    behind = pairwise_loss(torch.tensor([0.0]), torch.tensor([1.0]), tie=tie)
    assert at_zero < ahead
    assert math.isclose(ahead.item(), behind.item(), rel_tol=1e-6)
    d = torch.tensor([0.7], requires_grad=True)
    pairwise_loss(d, torch.zeros(1), tie=tie).backward()
    assert math.isclose(d.grad.item(), torch.sigmoid(torch.tensor(0.7)).item() - 0.5, rel_tol=1e-5)


def test_tie_ignores_the_margin():
    """A tie row's loss does not depend on the margin."""
    tie = torch.tensor([True])
    args = torch.tensor([0.3]), torch.tensor([0.1])
    assert pairwise_loss(*args, margin=torch.tensor([1.0]), tie=tie) == pairwise_loss(*args, tie=tie)


def test_weights_give_a_weighted_mean():
    """Weights scale each pair's pull: weight 0 drops a pair."""
    chosen, rejected = torch.tensor([2.0, -1.0]), torch.tensor([0.0, 0.0])
    only_first = pairwise_loss(chosen[:1], rejected[:1])
    assert math.isclose(pairwise_loss(chosen, rejected, weight=torch.tensor([1.0, 0.0])).item(), only_first.item(), rel_tol=1e-6)


def test_mixed_batch_of_ties_and_preferences():
    """One batch mixes ties and preferences; each row gets its own target."""
    chosen, rejected = torch.tensor([1.0, 1.0]), torch.tensor([0.0, 0.0])
    mixed = pairwise_loss(chosen, rejected, tie=torch.tensor([False, True]))
    preference = pairwise_loss(chosen[:1], rejected[:1])
    tie = pairwise_loss(chosen[1:], rejected[1:], tie=torch.tensor([True]))
    assert math.isclose(mixed.item(), (preference.item() + tie.item()) / 2, rel_tol=1e-6)


def test_leading_dimension_averages_members():
    """With rewards [K, B], each member's weighted batch mean is averaged over members."""
    chosen = torch.tensor([[1.0, 2.0], [0.0, -1.0]])
    rejected = torch.zeros(2, 2)
    weight = torch.tensor([[1.0, 3.0], [2.0, 2.0]])
    expected = (pairwise_loss(chosen[0], rejected[0], weight=weight[0]) + pairwise_loss(chosen[1], rejected[1], weight=weight[1])) / 2
    assert math.isclose(pairwise_loss(chosen, rejected, weight=weight).item(), expected.item(), rel_tol=1e-6)
