"""torch.nn's flat parameter names (``weight_hh_l1_reverse``) on rnnkit's layers, whose cells hold the parameters
(``cells.3.weight_hh``).

A layer's parameters stay the cells': ``named_parameters()`` (of the layer and of any model around it, which
walks the cells' own), optimizers, DDP and the trainer see ``cells.3.weight_hh``. The flat names reach them:

- ``state_dict`` and ``load_state_dict`` use torch's names (the hooks below; its missing keys too), parametrized
  weights included:
  ``cells.0.parametrizations.weight_hh.original0`` is ``parametrizations.weight_hh_l0.original0``, as
  ``weight_norm(torch_lstm, "weight_hh_l0")`` names it on a ``torch.nn.LSTM``;
- reading ``layer.weight_hh_l0`` (and ``get_parameter``) gives the cell's tensor;
- assigning a Parameter (or ``None``) replaces the cell's, as on torch.nn; assigning a plain tensor makes it a
  stand-in, which the layer's forward and step use in the cell's place (:func:`standing_in`) until a Parameter
  is assigned again. That is what ``torch.func.functional_call(layer, {"weight_hh_l0": w}, x)`` does: it
  assigns each tensor, runs, and assigns the originals back.

Not covered: ``torch.nn.utils.parametrize.register_parametrization`` (so ``weight_norm``, ``spectral_norm``) takes
only a module's own parameters, so on a layer it needs the cell's name: ``weight_norm(layer.cells[0],
"weight_hh")`` is torch's ``weight_norm(lstm, "weight_hh_l0")``; the kernels then read the parametrized weight.
``functional_call(..., strict=True)`` checks keys against ``named_parameters()``, so it wants the cells' names.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

from torch import Tensor, nn
from torch.nn.utils import parametrize

from rnnkit.errors import RnnkitError


def flat_names(cells: nn.ModuleList, num_directions: int) -> dict[str, str]:
    """torch.nn's name of each cell parameter -> rnnkit's: ``"weight_hh_l1_reverse" -> "cells.3.weight_hh"``
    (a nested one: ``"ln_hh_weight_l0" -> "cells.0.ln_hh.weight"``)."""
    names = {}
    for index, cell in enumerate(cells):
        suffix = _suffix(index, num_directions)
        for name, _ in cell.named_parameters():
            names[name.replace(".", "_") + suffix] = f"cells.{index}.{name}"
    return names


def _suffix(index: int, num_directions: int) -> str:
    layer, direction = divmod(index, num_directions)
    return f"_l{layer}" + ("_reverse" if direction else "")


def owner(layer, name: str) -> tuple[nn.Module, str]:
    """The module holding flat ``name`` and its attribute there: ``"ln_hh_weight_l0" -> (cells[0].ln_hh, "weight")``."""
    _, index, *path, attribute = layer._torch_names[name].split(".")
    return functools.reduce(getattr, path, layer.cells[int(index)]), attribute


def read(layer, name: str) -> Tensor | None:
    """``layer.<flat name>``: its stand-in, else the cell's tensor (an attribute read, not ``_parameters``: a
    parametrized weight is a property, and under functional_call a slot holds a plain tensor)."""
    stand_in = layer._stand_ins.get(name)
    if stand_in is not None:
        return stand_in
    module, attribute = owner(layer, name)
    return getattr(module, attribute)


def assign(layer, name: str, value) -> None:
    """``layer.<flat name> = value``: a Parameter or ``None`` goes to the cell; a plain tensor stands in for it."""
    module, attribute = owner(layer, name)
    if isinstance(value, Tensor) and not isinstance(value, nn.Parameter):
        if parametrize.is_parametrized(module, attribute):
            raise RnnkitError(
                f"{name} is parametrized on its cell; give functional_call its parametrization's originals "
                f"({layer._torch_names[name].removesuffix(attribute)}parametrizations.{attribute}.original...) or "
                "remove the parametrization."
            )
        _check_not_stood_in(layer, name, module._parameters.get(attribute))
        layer._stand_ins[name] = value
        return
    layer._stand_ins.pop(name, None)
    setattr(module, attribute, value)


def remove(layer, name: str) -> None:
    """``del layer.<flat name>``: its stand-in if it has one, else the cell's parameter (torch.nn deletes its own)."""
    if layer._stand_ins.pop(name, None) is None:
        module, attribute = owner(layer, name)
        delattr(module, attribute)


def _check_not_stood_in(layer, name: str, current) -> None:
    """Refuse a second stand-in for one weight: torch.func.functional_call given both of its names would leave
    one of the two values behind when it puts the originals back."""
    if current is not None and not isinstance(current, nn.Parameter):
        raise RnnkitError(
            f"{name} and {layer._torch_names[name]} name the same weight and both were given; pass one of "
            "them to torch.func.functional_call."
        )


@contextlib.contextmanager
def standing_in(layer) -> Iterator[None]:
    """The layer's stand-ins in their cells' parameter slots for the duration of one forward or step."""
    replaced = []  # (module, attribute, original: None where the parameter was removed)
    try:
        for name, tensor in layer._stand_ins.items():
            module, attribute = owner(layer, name)
            original = module._parameters.get(attribute)
            _check_not_stood_in(layer, name, original)
            replaced.append((module, attribute, original))
            module._parameters[attribute] = tensor
        yield
    finally:
        for module, attribute, original in reversed(replaced):
            module._parameters[attribute] = original


def to_torch_keys(layer, state_dict: dict, prefix: str, local_metadata) -> None:
    """``state_dict`` hook: rnnkit's keys -> torch.nn's, in torch.nn's order (parameters, then parametrizations)."""
    for torch_name, ours in layer._torch_names.items():
        if prefix + ours in state_dict:
            state_dict[prefix + torch_name] = state_dict.pop(prefix + ours)
    for index, cell in enumerate(layer.cells):
        for name, parametrization in getattr(cell, "parametrizations", {}).items():
            ours = f"{prefix}cells.{index}.parametrizations.{name}."
            theirs = f"{prefix}parametrizations.{name}{_suffix(index, layer.num_directions)}."
            for key in [ours + k for k in parametrization.state_dict() if ours + k in state_dict]:
                state_dict[theirs + key.removeprefix(ours)] = state_dict.pop(key)


def from_torch_keys(layer, state_dict: dict, prefix: str, *args) -> None:
    """``load_state_dict`` pre-hook: torch.nn's keys -> rnnkit's (so rnnkit's own load too, unchanged)."""
    layer.__dict__["_loading_prefix"] = prefix  # for missing_keys_as_torch, which torch calls without the prefix
    for torch_name, ours in layer._torch_names.items():
        if prefix + torch_name in state_dict:
            state_dict[prefix + ours] = state_dict.pop(prefix + torch_name)
    parametrized = prefix + "parametrizations."
    for key in [k for k in state_dict if k.startswith(parametrized)]:
        torch_name, _, rest = key.removeprefix(parametrized).partition(".")
        ours = layer._torch_names.get(torch_name, "")
        if ours.count(".") == 2:  # a cell's own parameter: cells.<index>.<name>
            cell, name = ours.rsplit(".", 1)
            state_dict[f"{prefix}{cell}.parametrizations.{name}.{rest}"] = state_dict.pop(key)


def missing_keys_as_torch(layer, incompatible_keys) -> None:
    """``load_state_dict`` post-hook: the layer's missing keys by torch.nn's names, as the state_dict gives them
    and torch.nn reports them (``weight_hh_l0``, not ``cells.0.weight_hh``); strict loading's message follows."""
    prefix = layer.__dict__.pop("_loading_prefix", "")
    theirs = {prefix + ours: prefix + torch_name for torch_name, ours in layer._torch_names.items()}
    missing = incompatible_keys.missing_keys
    missing[:] = [theirs.get(key, key) for key in missing]
