"""GPU identity taken from the recordings, per PCI device id.

The rocm-smi recording of a rig gives its device id ("GPU ID" up to ROCm 5.7, "Device ID" from
6.0). Identity a recording does not print (revision, subsystem, gfx target) is taken from a
sibling recording of the same model, named in ``source``. ``compute_units`` only sizes the KFD
``simd_count`` (what a product never reads) and is the model's public CU count.
"""

from __future__ import annotations

MODELS = {
    "0x73ff": {"name": "Navi 23 [Radeon RX 6600/6600 XT/6600M]", "revision": "0xc7",
               "subsystem_vendor": "0x1043", "subsystem_device": "0x05d5", "gfx": "gfx1032",
               "compute_units": 28, "source": "rocm6.x_rx6600 + amd-smi static (same host)"},
    "0x73df": {"name": "Navi 22 [Radeon RX 6700/6700 XT / 6800M]", "revision": "0xc1",
               "subsystem_vendor": "0x1002", "subsystem_device": "0x6601", "gfx": "gfx1031",
               "compute_units": 40, "source": "telegraf_rx6700xt_rocm602/571"},
    "0x73bf": {"name": "Navi 21 [Radeon RX 6800/6800 XT / 6900 XT]", "revision": "0xc3",
               "subsystem_vendor": "0x1002", "subsystem_device": "0x0e3a", "gfx": "gfx1030",
               "compute_units": 60, "source": "gpu-formats.md (GPU ID 0x73bf)"},
    "0x738c": {"name": "Arcturus GL-XL [Instinct MI100]", "revision": "0x01",
               "subsystem_vendor": "0x1002", "subsystem_device": "0x0c34", "gfx": "gfx908",
               "compute_units": 120, "source": "telegraf_mi100_rocm602"},
    "0x740c": {"name": "AMD INSTINCT MI250 (MCM) OAM AC MBA", "revision": "0x01",
               "subsystem_vendor": "0x1002", "subsystem_device": "0x0b0c", "gfx": "gfx90a",
               "compute_units": 104, "source": "rocm6.x_mi250_showallinfo"},
    "0x6861": {"name": "Vega 10 XT [Radeon PRO WX 9100]", "revision": "0x00",
               "subsystem_vendor": "0x1002", "subsystem_device": "0x0c1e", "gfx": "gfx900",
               "compute_units": 64, "source": "telegraf_vega-10-XT"},
    "0x66a1": {"name": "Radeon Instinct MI50 32GB", "revision": "0x00",
               "subsystem_vendor": "0x1002", "subsystem_device": "0x0834", "gfx": "gfx906",
               "compute_units": 60, "source": "telegraf_vega-20-WKS-GL-XE"},
}

# KFD gfx_target_version (major*10000 + minor*100 + stepping). rocm-smi 6.2+ prints it back as
# "gfx" + major + minor + stepping in decimal, hence "gfx9010" for gfx90a (see gpu-formats.md).
GFX_TARGET = {"gfx1032": 100302, "gfx1031": 100301, "gfx1030": 100300, "gfx1100": 110000,
              "gfx908": 90008, "gfx90a": 90010, "gfx9010": 90010, "gfx900": 90000, "gfx906": 90006}


def gfx_target_version(gfx):
    """'gfx1032' -> 100302, rocm-smi's 'gfx9010' -> 90010; 0 when unknown."""
    return GFX_TARGET.get(gfx, 0)


def identity(card):
    """Identity of a recorded rocm-smi card object: device id, revision, subsystem, gfx, name."""
    device_id = (card.get("Device ID") or card.get("GPU ID") or card.get("Card Model") or "").lower()
    if not device_id.startswith("0x"):
        raise ValueError("the recorded card has no device id (GPU ID / Device ID)")
    device_id = "0x%04x" % int(device_id, 16)
    model = dict(MODELS.get(device_id, {}))
    out = {
        "device_id": device_id,
        "revision": model.get("revision", "0x00"),
        "subsystem_vendor": model.get("subsystem_vendor", "0x1002"),
        "subsystem_device": model.get("subsystem_device", "0x0000"),
        "gfx": model.get("gfx"),
        "name": model.get("name", "AMD GPU %s" % device_id),
        "compute_units": model.get("compute_units", 32),
    }
    rev = card.get("Device Rev")
    if rev and rev.startswith("0x"):
        out["revision"] = "0x%02x" % int(rev, 16)
    subsys = card.get("Subsystem ID")
    if not subsys and "Device ID" not in card and "GPU ID" in card:
        subsys = card.get("Card model")  # <= 6.1: "Card model" is the subsystem id
    if subsys and subsys.startswith("0x") and subsys.lower() != "0x1002":  # ROCm 4.3 garbage
        out["subsystem_device"] = "0x%04x" % int(subsys, 16)
    out["gfx_target_version"] = (gfx_target_version(card.get("GFX Version"))
                                 or gfx_target_version(out["gfx"]))
    for key in ("Device Name", "Card Series", "Card series"):
        if card.get(key) and not card[key].startswith("0x"):
            out["name"] = card[key]
            break
    return out
