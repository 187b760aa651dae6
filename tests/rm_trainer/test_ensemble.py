import numpy as np
import pytest
import torch

from rm_trainer.ensemble import RewardEnsemble, fit_ensemble


def separable_task(n: int, dim: int = 16, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Return (chosen, rejected) embeddings where a hidden linear score always prefers chosen."""
    rng = np.random.default_rng(seed)
    w = rng.normal(size=dim)
    a, b = rng.normal(size=(n, dim)).astype(np.float32), rng.normal(size=(n, dim)).astype(np.float32)
    a_wins = (a @ w > b @ w)[:, None]
    return np.where(a_wins, a, b), np.where(a_wins, b, a)


def test_member_rewards_shape():
    """K members give rewards [K, n] for embeddings [n, dim]."""
    ensemble = RewardEnsemble(5, 16, 8)
    assert ensemble.member_rewards(np.zeros((3, 16), np.float32)).shape == (5, 3)


def test_ensemble_learns_a_separable_preference():
    """Trained heads rank held-out pairs of a separable task, and their parameters changed."""
    chosen, rejected = separable_task(600)
    initial = RewardEnsemble(5, 16, 32, seed=0)
    ensemble = fit_ensemble(chosen[:500], rejected[:500], members=5, hidden=32, epochs=20, batch_size=50, seed=0)
    for name, p in ensemble.named_parameters():
        assert not torch.equal(p, getattr(initial, name)), f"{name} did not change"
    diffs = ensemble.member_rewards(chosen[500:]) - ensemble.member_rewards(rejected[500:])
    assert (diffs.mean(0) > 0).mean() > 0.85
    assert ((diffs > 0).mean(1) > 0.8).all()


def test_members_differ_by_seed_and_bootstrap():
    """Each member has its own initialisation and bootstrap sample, so members disagree somewhat."""
    initial = RewardEnsemble(3, 16, 8, seed=0)
    assert not torch.equal(initial.w1[0], initial.w1[1])
    chosen, rejected = separable_task(200)
    ensemble = fit_ensemble(chosen, rejected, members=3, hidden=8, epochs=3, batch_size=20, seed=0)
    rewards = ensemble.member_rewards(chosen)
    assert rewards.std(0).mean() > 1e-3
    assert not np.allclose(rewards[0], rewards[1])


def test_fit_is_reproducible_for_a_seed():
    """The same seed gives the same ensemble; another seed another."""
    chosen, rejected = separable_task(100)
    fit = lambda seed: fit_ensemble(chosen, rejected, members=2, hidden=8, epochs=2, batch_size=10, seed=seed)
    np.testing.assert_array_equal(fit(1).member_rewards(chosen), fit(1).member_rewards(chosen))
    assert not np.allclose(fit(1).member_rewards(chosen), fit(2).member_rewards(chosen))


def test_tie_pairs_pull_rewards_together():
    """Pairs labelled as ties end up with closer rewards than the same pairs labelled as preferences."""
    chosen, rejected = separable_task(200)
    kwargs = dict(members=2, hidden=16, epochs=10, batch_size=20, seed=0)
    as_ties = fit_ensemble(chosen, rejected, tie=np.ones(200, bool), **kwargs)
    as_preferences = fit_ensemble(chosen, rejected, **kwargs)
    gap = lambda e: np.abs(e.member_rewards(chosen) - e.member_rewards(rejected)).mean()
    assert gap(as_ties) < gap(as_preferences) / 3


def test_on_epoch_reports_and_can_stop():
    """``on_epoch`` hears every epoch's loss, and an exception it raises ends the fit."""
    chosen, rejected = separable_task(50)
    seen = []

    def on_epoch(epoch, epochs, loss):
        seen.append((epoch, epochs, loss))
        if epoch == 2:
            raise KeyboardInterrupt

    try:
        fit_ensemble(chosen, rejected, members=2, hidden=4, epochs=5, batch_size=10, on_epoch=on_epoch)
    except KeyboardInterrupt:
        pass
    assert [s[:2] for s in seen] == [(1, 5), (2, 5)] and all(s[2] > 0 for s in seen)


def test_save_and_load_round_trip(tmp_path):
    """A saved ensemble loads with the same rewards, standardisation included."""
    chosen, rejected = separable_task(60)
    ensemble = fit_ensemble(chosen * 5 + 3, rejected * 5 + 3, members=3, hidden=8, epochs=2, batch_size=20)
    ensemble.save(tmp_path)
    loaded = RewardEnsemble.load(tmp_path)
    np.testing.assert_array_equal(ensemble.member_rewards(chosen), loaded.member_rewards(chosen))
    assert loaded.feature_mean.abs().mean() > 1


def test_out_of_bag_early_stopping_ends_a_hopeless_fit():
    """On random labels the out-of-bag loss stops improving, so training ends well before the last epoch."""
    rng = np.random.default_rng(0)
    chosen, rejected = rng.normal(size=(300, 16)).astype(np.float32), rng.normal(size=(300, 16)).astype(np.float32)
    stopped = fit_ensemble(chosen, rejected, members=3, hidden=32, epochs=40, patience=2, batch_size=30)
    assert stopped.history["epochs"] < 40 and all(loss is not None for loss in stopped.history["oob_loss"])
    assert fit_ensemble(chosen, rejected, members=3, hidden=32, epochs=6, patience=0, batch_size=30).history["epochs"] == 6


def test_early_stopping_keeps_each_members_best_epoch():
    """The returned weights are those of each member's best out-of-bag epoch, not the last epoch's."""
    rng = np.random.default_rng(1)
    chosen, rejected = rng.normal(size=(200, 16)).astype(np.float32), rng.normal(size=(200, 16)).astype(np.float32)
    ensemble = fit_ensemble(chosen, rejected, members=2, hidden=64, epochs=30, patience=30, batch_size=20, learning_rate=1e-2)
    overfit = fit_ensemble(chosen, rejected, members=2, hidden=64, epochs=30, patience=0, batch_size=20, learning_rate=1e-2)
    gap = lambda e: np.abs(e.member_rewards(chosen) - e.member_rewards(rejected)).mean()
    assert gap(ensemble) < gap(overfit)


def test_a_warm_start_begins_from_the_given_heads_and_their_standardisation():
    """With no epoch to run, warm heads come back as they went in; a cold fit standardises on its own data."""
    chosen, rejected = separable_task(300)
    first = fit_ensemble(chosen[:150], rejected[:150], members=3, hidden=16, epochs=5, batch_size=30, seed=0)
    shifted_chosen, shifted_rejected = chosen[150:] + 5.0, rejected[150:] + 5.0
    warm = fit_ensemble(shifted_chosen, shifted_rejected, members=3, hidden=16, epochs=0, batch_size=30, seed=1, init=first)
    for name, value in first.state_dict().items():
        assert torch.equal(warm.state_dict()[name], value), name
    assert warm.history["warm"] is True
    cold = fit_ensemble(shifted_chosen, shifted_rejected, members=3, hidden=16, epochs=0, batch_size=30, seed=1)
    assert cold.history["warm"] is False and not torch.allclose(cold.feature_mean, first.feature_mean)


def test_warm_heads_move_toward_new_pairs_that_contradict_what_they_learned():
    """Heads trained on one preference, given pairs of the opposite one, train on them: their weights change and their
    accuracy on held-out pairs of the new preference rises from where it started."""
    chosen, rejected = separable_task(900)
    trained = fit_ensemble(chosen[:400], rejected[:400], members=3, hidden=16, epochs=10, batch_size=25, seed=0)
    warm = fit_ensemble(rejected[400:800], chosen[400:800], members=3, hidden=16, epochs=10, batch_size=25, seed=1, init=trained)

    def flipped_accuracy(ensemble):
        return ((ensemble.member_rewards(rejected[800:]) - ensemble.member_rewards(chosen[800:])).mean(0) > 0).mean()

    assert not torch.equal(warm.w1, trained.w1) and warm.history["epochs"] >= 1
    assert flipped_accuracy(trained) < 0.2 and flipped_accuracy(warm) > flipped_accuracy(trained) + 0.3


def test_warm_heads_of_another_shape_are_refused():
    """Heads of another size cannot start a fit: the error names both shapes."""
    chosen, rejected = separable_task(100)
    with pytest.raises(ValueError, match=r"3 x 16 x 8.*3 x 16 x 16"):
        fit_ensemble(chosen, rejected, members=3, hidden=16, epochs=1, init=RewardEnsemble(3, 16, 8))
