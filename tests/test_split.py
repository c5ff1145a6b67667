"""Split protocols: no leakage, time order, determinism, held-out users, predefined parts."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from recsys_core.config import config_from_dict, config_to_dict
from recsys_core.errors import ConfigError, DataError
from recsys_core.split import SPLITS, SplitSpec, check_split, load_split_file, make_split

PROTOCOLS = ("random", "leave_last", "temporal", "users")


def _pairs(part) -> set[tuple[int, int]]:
    return set(zip(part.users.tolist(), part.items.tolist(), strict=True))


def _assert_no_pair_leak(split) -> None:
    test = _pairs(split.test)
    for part in (split.train, split.valid, split.fold_in):
        if part is not None:
            assert not test & _pairs(part)


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_protocol_has_no_leakage_and_shares_vocabularies(synthetic, protocol):
    split = make_split(synthetic, SplitSpec(protocol=protocol, seed=3))
    _assert_no_pair_leak(split)
    assert split.train.n_items == synthetic.n_items == split.test.n_items
    assert split.exclusion.shape == (synthetic.n_users, synthetic.n_items)
    assert split.test.nnz > 0 and len(split.test_users) > 0
    assert np.array_equal(split.test_users, np.unique(split.test.users))
    # Every row ends up in at most one part.
    parts = [p for p in (split.train, split.valid, split.test, split.fold_in) if p is not None]
    assert sum(p.nnz for p in parts) <= synthetic.nnz
    # The exclusion matrix is exactly train + valid (+ fold-in).
    seen = split.train.binary
    for p in (split.valid, split.fold_in):
        if p is not None:
            seen = seen + p.binary
    assert ((split.exclusion > 0) != (seen > 0)).nnz == 0
    assert split.description


@pytest.mark.parametrize("protocol", PROTOCOLS)
def test_protocol_is_deterministic_under_seed(synthetic, protocol):
    a = make_split(synthetic, SplitSpec(protocol=protocol, seed=11))
    b = make_split(synthetic, SplitSpec(protocol=protocol, seed=11))
    assert _pairs(a.test) == _pairs(b.test)
    assert _pairs(a.train) == _pairs(b.train)


@pytest.mark.parametrize("protocol", ("random", "users"))
def test_seed_changes_random_protocols(synthetic, protocol):
    a = make_split(synthetic, SplitSpec(protocol=protocol, seed=1))
    b = make_split(synthetic, SplitSpec(protocol=protocol, seed=2))
    assert _pairs(a.test) != _pairs(b.test)


def test_random_ratios_per_user(synthetic):
    split = make_split(synthetic, SplitSpec(protocol="random", test_ratio=0.2, valid_ratio=0.1))
    total = split.train.nnz + split.valid.nnz + split.test.nnz
    assert split.test.nnz / total == pytest.approx(0.2, abs=0.03)
    assert split.valid.nnz / total == pytest.approx(0.1, abs=0.03)
    # Every user with >= 2 interactions keeps training data and gets at least one test item.
    train_count = np.bincount(split.train.users, minlength=synthetic.n_users)
    test_count = np.bincount(split.test.users, minlength=synthetic.n_users)
    assert (train_count[synthetic.user_activity >= 2] >= 1).all()
    assert (test_count[synthetic.user_activity >= 2] >= 1).all()


def test_leave_last_holds_out_latest_in_time(synthetic):
    split = make_split(synthetic, SplitSpec(protocol="leave_last", k=1, valid_k=1))
    n = synthetic.n_users
    assert np.bincount(split.test.users, minlength=n).max() == 1
    last_time = np.full(n, -1, dtype=np.int64)
    np.maximum.at(last_time, synthetic.users, synthetic.timestamps)
    assert (split.test.timestamps == last_time[split.test.users]).all()
    test_time = np.zeros(n, dtype=np.int64)
    test_time[split.test.users] = split.test.timestamps
    valid_time = np.zeros(n, dtype=np.int64)
    valid_time[split.valid.users] = split.valid.timestamps
    assert (split.train.timestamps <= test_time[split.train.users]).all()
    assert (split.train.timestamps <= valid_time[split.train.users]).all()
    assert (split.valid.timestamps <= test_time[split.valid.users]).all()


def test_leave_last_k_and_no_valid(synthetic):
    split = make_split(synthetic, SplitSpec(protocol="leave_last", k=2, valid_k=0))
    assert split.valid is None
    assert set(np.bincount(split.test.users)[split.test_users]) == {2}


def test_temporal_respects_global_cutoff(synthetic):
    split = make_split(synthetic, SplitSpec(protocol="temporal", test_ratio=0.2, valid_ratio=0.1))
    assert split.cutoff is not None
    assert split.train.timestamps.max() < split.cutoff <= split.test.timestamps.min()
    assert split.valid.timestamps.max() < split.cutoff
    assert split.valid.timestamps.min() > split.train.timestamps.max() - 1  # valid after train


def test_temporal_explicit_cutoff(synthetic):
    cut = int(np.median(synthetic.timestamps))
    split = make_split(synthetic, SplitSpec(protocol="temporal", cutoff=cut, valid_ratio=0.0))
    assert split.cutoff == cut and split.valid is None
    assert split.train.timestamps.max() < cut <= split.test.timestamps.min()


def test_temporal_needs_timestamps(synthetic):
    no_time = dataclasses.replace(synthetic, timestamps=None)
    with pytest.raises(DataError, match="timestamps"):
        make_split(no_time, SplitSpec(protocol="temporal"))


def test_held_out_users_absent_from_train(synthetic):
    split = make_split(synthetic, SplitSpec(protocol="users", test_ratio=0.2, target_ratio=0.3))
    train_users = set(np.unique(split.train.users).tolist())
    assert not train_users & set(split.test_users.tolist())
    assert set(np.unique(split.fold_in.users).tolist()) == set(split.test_users.tolist())
    assert len(split.test_users) == pytest.approx(0.2 * synthetic.n_users, abs=2)
    share = split.test.nnz / (split.test.nnz + split.fold_in.nnz)
    assert share == pytest.approx(0.3, abs=0.05)
    # Validation is carved from training users only, so early stopping scores known users.
    assert set(np.unique(split.valid.users).tolist()) <= train_users


def test_repeated_pairs_never_straddle_the_split(small_synthetic):
    data = small_synthetic
    # Duplicate every interaction one hour later: a pair may not appear on both sides.
    doubled = dataclasses.replace(
        data,
        users=np.concatenate([data.users, data.users]),
        items=np.concatenate([data.items, data.items]),
        values=np.concatenate([data.values, data.values]),
        timestamps=np.concatenate([data.timestamps, data.timestamps + 3600]),
    )
    for protocol in ("random", "leave_last", "users", "temporal"):
        split = make_split(doubled, SplitSpec(protocol=protocol))
        _assert_no_pair_leak(split)


def test_check_split_raises_on_planted_leakage(synthetic):
    split = make_split(synthetic, SplitSpec(protocol="random"))
    leaked_train = dataclasses.replace(
        split.train,
        users=np.concatenate([split.train.users, split.test.users[:1]]),
        items=np.concatenate([split.train.items, split.test.items[:1]]),
        values=np.concatenate([split.train.values, split.test.values[:1]]),
        timestamps=np.concatenate([split.train.timestamps, split.test.timestamps[:1]]),
    )
    with pytest.raises(DataError, match="also appear in train"):
        check_split(dataclasses.replace(split, train=leaked_train))


def test_check_split_raises_on_time_leakage(synthetic):
    split = make_split(synthetic, SplitSpec(protocol="leave_last", valid_k=0))
    late = split.train.timestamps.copy()
    late[0] = split.test.timestamps.max() + 10  # a training row after the user's test item
    with pytest.raises(DataError, match="time leakage"):
        check_split(
            dataclasses.replace(split, train=dataclasses.replace(split.train, timestamps=late))
        )
    temporal = make_split(synthetic, SplitSpec(protocol="temporal"))
    late = temporal.train.timestamps.copy()
    late[0] = temporal.cutoff
    with pytest.raises(DataError, match="cutoff"):
        check_split(
            dataclasses.replace(
                temporal, train=dataclasses.replace(temporal.train, timestamps=late)
            )
        )


def test_check_split_raises_on_held_out_user_in_train(synthetic):
    split = make_split(synthetic, SplitSpec(protocol="users"))
    u = split.test_users[0]
    extra_item = (split.test.items[split.test.users == u][0] + 1) % synthetic.n_items
    train = dataclasses.replace(
        split.train,
        users=np.append(split.train.users, np.int32(u)),
        items=np.append(split.train.items, np.int32(extra_item)),
        values=np.append(split.train.values, np.float32(1)),
        timestamps=np.append(split.train.timestamps, 0),
    )
    bad = dataclasses.replace(split, train=train)
    with pytest.raises(DataError):
        check_split(bad)


def _labelled(data, seed=0):
    rng = np.random.default_rng(seed)
    labels = rng.choice(
        np.array(["train", "valid", "test"], dtype=object), size=data.nnz, p=[0.8, 0.1, 0.1]
    )
    return dataclasses.replace(data, labels=labels)


def test_predefined_from_labels(synthetic):
    data = _labelled(synthetic)
    split = make_split(data, SplitSpec(protocol="predefined"))
    assert split.test.nnz == (data.labels == "test").sum()
    assert split.valid.nnz == (data.labels == "valid").sum()
    assert split.train.nnz == (data.labels == "train").sum()


def test_predefined_without_labels_or_file(synthetic):
    with pytest.raises(DataError, match="split column"):
        make_split(synthetic, SplitSpec(protocol="predefined"))


def test_predefined_leak_is_an_error(synthetic):
    labels = np.full(synthetic.nnz, "train", dtype=object)
    labels[::5] = "test"
    # A repeated pair with one row in test and one in train: leakage.
    data = dataclasses.replace(
        synthetic,
        users=np.append(synthetic.users, synthetic.users[0]),
        items=np.append(synthetic.items, synthetic.items[0]),
        values=np.append(synthetic.values, np.float32(1)),
        timestamps=np.append(synthetic.timestamps, synthetic.timestamps[0] + 1),
        labels=np.append(labels, "train"),
    )
    with pytest.raises(DataError, match="leakage"):
        make_split(data, SplitSpec(protocol="predefined"))


def _write_split_file(data, path, labels, columns=("userId", "movieId", "part")):
    frame = pd.DataFrame(
        {
            columns[0]: data.user_ids[data.users],
            columns[1]: data.item_ids[data.items],
            columns[2]: labels,
        }
    ).sample(frac=1.0, random_state=0)  # row order of the file must not matter
    frame.to_csv(path, index=False)


def test_predefined_from_split_file(synthetic, tmp_path):
    labels = _labelled(synthetic, seed=4).labels
    path = tmp_path / "split.csv"
    _write_split_file(synthetic, path, labels)
    got = load_split_file(synthetic, path)
    assert (got == labels).all()
    split = make_split(synthetic, SplitSpec(protocol="predefined", split_file=str(path)))
    assert split.test.nnz == (labels == "test").sum()
    # Explicit column names, RecBole-style headers.
    other = tmp_path / "split2.csv"
    _write_split_file(synthetic, other, labels, columns=("who", "what", "fold"))
    with pytest.raises(DataError, match="user id"):
        load_split_file(synthetic, other)
    got = load_split_file(synthetic, other, user_col="who", item_col="what", part_col="fold")
    assert (got == labels).all()


def test_split_file_problems(synthetic, tmp_path):
    labels = _labelled(synthetic, seed=1).labels
    path = tmp_path / "short.csv"
    pd.DataFrame(
        {
            "user_id": synthetic.user_ids[synthetic.users][1:],
            "item_id": synthetic.item_ids[synthetic.items][1:],
            "split": labels[1:],
        }
    ).to_csv(path, index=False)
    with pytest.raises(DataError, match="not in the split file"):
        load_split_file(synthetic, path)
    bad = tmp_path / "bad.csv"
    odd = labels.copy()
    odd[0] = "holdout"
    _write_split_file(synthetic, bad, odd)
    with pytest.raises(DataError, match="unknown split label"):
        make_split(synthetic, SplitSpec(protocol="predefined", split_file=str(bad)))
    with pytest.raises(DataError, match="not found"):
        load_split_file(synthetic, tmp_path / "missing.csv")
    dup = tmp_path / "dup.csv"
    frame = pd.read_csv(bad)
    frame = pd.concat(
        [frame, frame.iloc[:1].assign(part="train" if frame.part[0] != "train" else "test")]
    )
    frame.to_csv(dup, index=False)
    with pytest.raises(DataError, match="different parts"):
        load_split_file(synthetic, dup)


def test_split_spec_round_trip_and_validation():
    spec = SplitSpec(protocol="leave_last", k=2, seed=9)
    payload = json.loads(json.dumps(config_to_dict(spec)))
    assert config_from_dict(SplitSpec, payload) == spec
    assert SplitSpec.from_dict(spec.to_dict()) == spec
    with pytest.raises(ConfigError):
        SplitSpec(protocol="bogus")
    with pytest.raises(ConfigError, match="no training"):
        SplitSpec(test_ratio=0.6, valid_ratio=0.5)


def test_every_protocol_has_a_one_sentence_explanation():
    assert set(SPLITS) == {"random", "leave_last", "temporal", "users", "predefined"}
    for protocol in SPLITS.values():
        text = protocol.explanation
        assert text.endswith(".") and text.count(". ") == 0 and len(text) > 30


def test_protocol_fields_list_what_each_protocol_reads(small_synthetic):
    """The Train form shows only PROTOCOL_FIELDS[protocol]: changing any other field must not
    change that protocol's split (else the form would hide a setting that matters)."""
    from dataclasses import fields

    from recsys_core.split import PROTOCOL_FIELDS, PROTOCOLS, SplitSpec, make_split

    assert set(PROTOCOL_FIELDS) == set(PROTOCOLS)
    names = {f.name for f in fields(SplitSpec)}
    assert all(set(v) <= names for v in PROTOCOL_FIELDS.values())
    others = {"test_ratio": 0.3, "valid_ratio": 0.2, "k": 2, "valid_k": 0, "target_ratio": 0.5}
    others |= {"seed": 7}
    for protocol in ("random", "leave_last", "temporal", "users"):
        changed = {k: v for k, v in others.items() if k not in PROTOCOL_FIELDS[protocol]}
        a = make_split(small_synthetic, SplitSpec(protocol=protocol))
        b = make_split(small_synthetic, SplitSpec(protocol=protocol, **changed))
        for part in ("train", "test"):
            x, y = getattr(a, part), getattr(b, part)
            assert x.nnz == y.nnz and (x.users == y.users).all(), (protocol, part)
