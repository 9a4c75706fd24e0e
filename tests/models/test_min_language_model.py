"""CharLanguageModel with minGRU/minLSTM layers: the scan's sequence mode and one-step mode agree."""

from __future__ import annotations

import pytest
import torch

from rnnkit.models import CharLanguageModel


@pytest.mark.parametrize("cell", ["mingru", "minlstm"])
def test_stepping_one_id_at_a_time_gives_the_full_sequence_logits(cell):
    torch.manual_seed(0)
    model = CharLanguageModel(12, embedding_dim=4, units=6, cell=cell, num_layers=2, dropout=0.0)
    model.eval()
    ids = torch.randint(0, 12, (2, 9))
    with torch.no_grad():
        full = model(ids)
        state, steps = None, []
        for t in range(9):
            logits, state = model.step(ids[:, t : t + 1], state)
            steps.append(logits)
    torch.testing.assert_close(torch.cat(steps, 1), full, rtol=1e-5, atol=1e-6)


def test_unknown_cells_are_still_refused():
    with pytest.raises(ValueError, match="mingru"):
        CharLanguageModel(12, cell="transformer")


def test_zoneout_is_refused_for_the_scan_cells_by_name():
    import pytest

    from rnnkit.models import CharLanguageModel

    with pytest.raises(ValueError, match="`zoneout` applies to cell='lstm'.*got cell='minlstm'"):
        CharLanguageModel(20, cell="minlstm", zoneout=0.1)
