"""Batches for variable-length text: length-grouped batch order and dynamic padding."""

from __future__ import annotations

import random

import torch

MEGA_BATCH = 50  # sort by length inside groups of 50 batches: little padding, still shuffled


class CappedWindows:
    """At most ``cap`` windows of each document per epoch, spread evenly over it (window j of cap at
    position (j + u) · n / cap, u drawn per document and epoch): every document weighs about the same in the
    loss, and an epoch costs documents × cap rows at most, whatever the documents' lengths."""

    def __init__(self, doc_ids: list[int], cap: int, seed: int):
        self.cap, self.seed = cap, seed
        groups: dict[int, list[int]] = {}
        for row, doc in enumerate(doc_ids):
            groups.setdefault(doc, []).append(row)
        self.groups = list(groups.values())

    def __len__(self) -> int:
        return sum(min(len(g), self.cap) for g in self.groups)

    def rows(self, epoch: int) -> list[int]:
        rng = random.Random(self.seed * 1_000_003 + epoch)
        out = []
        for group in self.groups:
            n = len(group)
            if n <= self.cap:
                out += group
            else:
                u = rng.random()
                out += [group[int((j + u) * n / self.cap)] for j in range(self.cap)]
        return out


class LengthGroupedBatches(torch.utils.data.Sampler):
    """Yields lists of indices. Set ``epoch`` before iterating for a new, reproducible order."""

    def __init__(self, lengths: list[int], batch_size: int, seed: int, shuffle: bool = True, group: bool = True,
                 windows: CappedWindows | None = None):
        self.lengths, self.batch_size, self.seed = lengths, batch_size, seed
        self.shuffle, self.group, self.epoch, self.windows = shuffle, group, 0, windows

    def batches(self) -> list[list[int]]:
        order = self.windows.rows(self.epoch) if self.windows else list(range(len(self.lengths)))
        rng = random.Random(self.seed + self.epoch)
        if self.shuffle:
            rng.shuffle(order)
        if self.group:
            span = self.batch_size * MEGA_BATCH
            order = [i for start in range(0, len(order), span)
                     for i in sorted(order[start:start + span], key=lambda j: -self.lengths[j])]
        out = [order[i:i + self.batch_size] for i in range(0, len(order), self.batch_size)]
        if self.shuffle and self.group:
            rng.shuffle(out)
        return out

    def __iter__(self):
        return iter(self.batches())

    def __len__(self) -> int:
        rows = len(self.windows) if self.windows else len(self.lengths)
        return (rows + self.batch_size - 1) // self.batch_size


def collate(pad_id: int, multiple: int = 8):
    """Pad to the longest row of the batch, rounded up to ``multiple`` (tensor-core friendly)."""

    def fn(rows: list[dict]) -> dict[str, torch.Tensor]:
        longest = max(len(r["input_ids"]) for r in rows)
        width = (longest + multiple - 1) // multiple * multiple
        ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            n = len(r["input_ids"])
            ids[i, :n] = torch.as_tensor(r["input_ids"])
            mask[i, :n] = 1
        return {"input_ids": ids, "attention_mask": mask,
                "labels": torch.as_tensor([r["labels"] for r in rows], dtype=torch.long),
                "doc_id": torch.as_tensor([r["doc_id"] for r in rows], dtype=torch.long)}

    return fn


def row_lengths(dataset) -> list[int]:
    """Token count of every row, read from the Arrow column (no Python lists built)."""
    import pyarrow.compute as pc

    column = dataset.with_format("arrow")["input_ids"]
    return pc.list_value_length(column).to_pylist()


class TokenMatrix:
    """Rows of token ids as one flat array plus offsets: padded batches by vectorised indexing."""

    def __init__(self, offsets, flat):
        self.offsets, self.flat = offsets, flat
        self.lengths = offsets[1:] - offsets[:-1]

    @classmethod
    def from_dataset(cls, dataset) -> TokenMatrix:
        import numpy as np

        column = dataset.with_format("arrow")["input_ids"]
        column = column.combine_chunks() if hasattr(column, "combine_chunks") else column
        return cls(np.asarray(column.offsets, dtype=np.int64), np.asarray(column.values, dtype=np.int64))

    @classmethod
    def from_lengths(cls, lengths, flat) -> TokenMatrix:
        """Rows given as their lengths and their ids one after the other."""
        import numpy as np

        offsets = np.zeros(len(lengths) + 1, dtype=np.int64)
        np.cumsum(lengths, out=offsets[1:])
        return cls(offsets, np.asarray(flat, dtype=np.int64))

    @classmethod
    def from_rows(cls, rows: list[list[int]]) -> TokenMatrix:
        import numpy as np

        lengths = [len(r) for r in rows]
        return cls.from_lengths(lengths, np.fromiter((t for r in rows for t in r), dtype=np.int64, count=sum(lengths)))

    def batch(self, idx, pad_id: int, multiple: int = 8) -> dict[str, torch.Tensor]:
        import numpy as np

        idx = np.asarray(idx, dtype=np.int64)
        starts, lengths = self.offsets[idx], self.lengths[idx]
        width = int(-(-lengths.max() // multiple) * multiple) if len(idx) else 0
        cols = np.arange(width)
        mask = cols[None, :] < lengths[:, None]
        ids = np.where(mask, self.flat[np.where(mask, starts[:, None] + cols[None, :], 0)], pad_id)
        return {"input_ids": torch.from_numpy(ids), "attention_mask": torch.from_numpy(mask.astype(np.int64))}

    def packed(self, idx) -> dict:
        """The rows laid end to end (inference/packed.py): ids and positions of every token, the rows'
        cumulative lengths (int32, as the flash kernel reads them) and the longest row."""
        import numpy as np

        idx = np.asarray(idx, dtype=np.int64)
        starts, lengths = self.offsets[idx], self.lengths[idx]
        cu = np.zeros(len(idx) + 1, dtype=np.int32)
        np.cumsum(lengths, out=cu[1:])
        positions = np.arange(int(cu[-1]), dtype=np.int64) - np.repeat(cu[:-1].astype(np.int64), lengths)
        ids = self.flat[np.repeat(starts, lengths) + positions]
        return {"ids": torch.from_numpy(ids), "positions": torch.from_numpy(positions), "cu": torch.from_numpy(cu),
                "max_len": int(lengths.max()) if len(idx) else 0}
