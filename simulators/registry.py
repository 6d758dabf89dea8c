"""A seeded generator of plausible equipment-registry rows (a Shanghai-like city).

Pure and deterministic: the same ``(n, seed)`` gives the same rows, independent of the clock
(dates are relative to :data:`REFERENCE_DATE`). Elevators come in buildings: the elevators of
one building share its address, position, use unit, maintenance firm and height, and their
rated speed suits the height. Used by the fleet simulator, the demo, tests and benchmarks.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Sequence
from datetime import date
from typing import TypeVar

from liftwatch.registry.model import REGISTRY_COLUMNS, ElevatorKind, RegistryRow, write_registry_csv

T = TypeVar("T")

__all__ = ["REFERENCE_DATE", "REGISTRY_COLUMNS", "generate_registry", "write_registry_csv"]

REFERENCE_DATE = date(2026, 1, 1)
"""Ages and inspection dates are computed from this day, so a seed always gives the same rows."""

# name -> (administrative division code, centre latitude, centre longitude, streets)
_DISTRICTS: dict[str, tuple[str, float, float, tuple[str, ...]]] = {
    "浦东新区": ("310115", 31.221, 121.544, ("世纪大道", "张杨路", "陆家嘴环路", "浦东南路", "锦绣路", "川沙路")),
    "黄浦区": ("310101", 31.231, 121.484, ("南京东路", "延安东路", "西藏中路", "淮海中路", "中山南路")),
    "徐汇区": ("310104", 31.188, 121.437, ("漕溪北路", "肇嘉浜路", "衡山路", "虹桥路", "龙华中路")),
    "长宁区": ("310105", 31.220, 121.424, ("长宁路", "仙霞路", "天山路", "延安西路", "遵义路")),
    "静安区": ("310106", 31.229, 121.448, ("南京西路", "北京西路", "共和新路", "江场路", "愚园路")),
    "普陀区": ("310107", 31.249, 121.397, ("曹杨路", "真北路", "中山北路", "武宁路", "金沙江路")),
    "虹口区": ("310109", 31.264, 121.505, ("四川北路", "西江湾路", "大连路", "曲阳路", "临平路")),
    "杨浦区": ("310110", 31.260, 121.526, ("四平路", "国定路", "控江路", "长阳路", "黄兴路")),
    "闵行区": ("310112", 31.113, 121.382, ("沪闵路", "七莘路", "莘庄路", "虹井路", "都市路")),
    "宝山区": ("310113", 31.405, 121.489, ("牡丹江路", "友谊路", "共和新路", "淞宝路", "殷高西路")),
    "嘉定区": ("310114", 31.375, 121.265, ("城中路", "博乐路", "塔城路", "安亭路", "曹安公路")),
}
_DISTRICT_NAMES = tuple(_DISTRICTS)
# Central districts are denser in buildings.
_DISTRICT_WEIGHTS = (16, 8, 10, 7, 9, 7, 6, 8, 12, 8, 9)

# Registration-code prefix of each kind (特种设备代码).
_KIND_CODE = {
    ElevatorKind.TRACTION: "3110",
    ElevatorKind.HYDRAULIC: "3120",
    ElevatorKind.ESCALATOR: "3310",
    ElevatorKind.MOVING_WALK: "3320",
}

_FIRM_WORDS = (
    "申龙", "沪东", "东方", "金陵", "长江", "浦江", "华东", "永达", "联合", "安捷", "恒通", "国通",
    "嘉程", "百盛", "瑞丰", "明珠", "新兴", "宏达", "安泰", "力通", "建安", "佳美", "天宇", "华升",
    "众城", "稳达", "汇通", "申通", "康达", "远大", "博越", "信诚", "智诚", "凯达", "德瑞", "鼎立",
)  # fmt: skip
_FIRM_SUFFIXES = (
    "电梯工程有限公司",
    "电梯有限公司",
    "电梯维修保养有限公司",
    "机电设备安装有限公司",
    "电梯服务有限公司",
)
_UNIT_WORDS = (
    "陆家嘴", "金桥", "张江", "徐家汇", "中山", "静安", "长风", "五角场", "莘庄", "新城", "万科", "绿地",
    "中海", "华润", "瑞安", "锦江", "永升", "古北", "虹桥", "世纪", "明华", "东湖", "金茂", "仁恒",
    "融创", "保利", "招商", "复地", "城建", "天安", "新华", "和平", "光明", "阳光", "康桥", "周浦",
)  # fmt: skip
_UNIT_SUFFIXES = (
    "物业管理有限公司", "物业服务有限公司", "置业有限公司", "房地产开发有限公司", "商业管理有限公司",
    "实业有限公司", "酒店管理有限公司", "医院", "大厦管理有限公司", "资产管理有限公司",
)  # fmt: skip
# (manufacturer, models)
_MAKERS = (
    ("上海三菱电梯有限公司", ("LEHY-III", "LEHY-H", "HOPE-II", "ELENESSA")),
    ("奥的斯电梯(中国)有限公司", ("GeN2", "SkyBuild", "GeN2-MR", "GeN3")),
    ("通力电梯有限公司", ("KONE MonoSpace", "KONE MiniSpace", "KONE TranSys")),
    ("迅达(中国)电梯有限公司", ("Schindler 3300", "Schindler 5500", "Schindler 7000")),
    ("蒂森克虏伯电梯(上海)有限公司", ("evolution", "synergy", "meta200")),
    ("日立电梯(中国)有限公司", ("HGP", "MCA", "UAX")),
    ("康力电梯股份有限公司", ("KLK2", "KLF", "KLW")),
    ("江南嘉捷电梯股份有限公司", ("JNJJ-01", "JNJJ-ES")),
)
_ESCALATOR_MODELS = ("9300AE", "KONE TravelMaster", "Schindler 9300", "LEHY-ES", "TE-E")
_RATED_LOADS = (630, 800, 1000, 1050, 1150, 1350, 1600, 2000)
_COMMON_HEIGHTS = (6, 7, 11, 18, 24, 28, 32)
_BOTTOM_FLOORS = (-3, -2, -2, -2, -1, -1, -1, -1, 1, 1, 1, 1)
_BUILDING_SIZES = (1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 4, 4, 4, 4, 6, 6, 8)
_REGISTRATION_SEQ_DIGITS = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"


def _company_names(rng: random.Random, words: tuple[str, ...], suffixes: tuple[str, ...], count: int) -> list[str]:
    combos = [f"上海{word}{suffix}" for word in words for suffix in suffixes]
    return rng.sample(combos, min(count, len(combos)))


def _sequence(number: int) -> str:
    """Six characters unique per number (decimal below a million, base 36 above)."""
    if number < 1_000_000:
        return f"{number:06d}"
    chars = []
    for _ in range(6):
        number, digit = divmod(number, 36)
        chars.append(_REGISTRATION_SEQ_DIGITS[digit])
    return "".join(reversed(chars))


def _pick(options: Sequence[T], r: Callable[[], float]) -> T:
    return options[int(r() * len(options))]


def _speed_for(storeys: int, r: Callable[[], float]) -> float:
    """A rated speed (m/s) that suits the number of storeys served."""
    if storeys <= 8:
        return 1.0
    if storeys <= 15:
        return _pick((1.0, 1.5, 1.75), r)
    if storeys <= 25:
        return _pick((1.75, 2.0), r)
    if storeys <= 40:
        return _pick((2.0, 2.5), r)
    return _pick((2.5, 4.0), r)


def generate_registry(n: int, seed: int, *, without_terminal: float = 0.0) -> list[RegistryRow]:
    """``n`` plausible registry rows, the same for the same seed.

    Registration codes, rescue codes and terminal ids are unique; terminal ids are ``T`` plus a
    zero-padded number. ``without_terminal`` is the share of elevators with no terminal fitted.
    """
    if n < 0:
        raise ValueError("n must be >= 0")
    if n > 990_000:
        raise ValueError("at most 990,000 rows: rescue codes have 5 or 6 digits")
    rng = random.Random(seed)
    firms = _company_names(rng, _FIRM_WORDS, _FIRM_SUFFIXES, 30)
    units = _company_names(rng, _UNIT_WORDS, _UNIT_SUFFIXES, 200)
    rescue_codes = rng.sample(range(10_000, 1_000_000), n)
    width = max(6, len(str(n)))
    # rng.random() with indexing instead of choice()/randint(): same determinism, 2-3x faster.
    r = rng.random
    reference = REFERENCE_DATE.toordinal()
    newest_install = reference - 30
    rows: list[RegistryRow] = []
    while len(rows) < n:
        district = rng.choices(_DISTRICT_NAMES, _DISTRICT_WEIGHTS)[0]
        area_code, lat0, lon0, streets = _DISTRICTS[district]
        address = f"上海市{district}{_pick(streets, r)}{1 + int(r() * 2999)}号"
        latitude = round(lat0 + (r() - 0.5) * 0.12, 6)
        longitude = round(lon0 + (r() - 0.5) * 0.14, 6)
        use_unit = _pick(units, r)
        maintainer = _pick(firms, r)
        # Skewed towards newer buildings; about a third of the fleet is over 15 years old.
        built = reference - 60 - int(r() ** 1.8 * 30 * 365)
        mall = r() < 0.12
        top = _pick(_COMMON_HEIGHTS, r) if r() < 0.6 else 5 + int(r() * 56)
        bottom = _pick(_BOTTOM_FLOORS, r)
        count = _pick(_BUILDING_SIZES, r)
        maker, models = _pick(_MAKERS, r)
        for _ in range(min(count, n - len(rows))):
            index = len(rows)
            if mall and r() < 0.6:
                kind = ElevatorKind.ESCALATOR if r() < 0.8 else ElevatorKind.MOVING_WALK
            elif top <= 6 and r() < 0.2:
                kind = ElevatorKind.HYDRAULIC
            else:
                kind = ElevatorKind.TRACTION
            installed = min(built + int(r() * 400) if r() < 0.85 else built, newest_install)
            load: int | None
            if kind is ElevatorKind.TRACTION:
                low, high = bottom, top
                speed = _speed_for(top - bottom, r)
                load = _pick(_RATED_LOADS, r)
                model = _pick(models, r)
            elif kind is ElevatorKind.HYDRAULIC:
                low, high = max(bottom, -1), min(top, 6)
                speed, load, model = _pick((0.5, 0.63, 1.0), r), _pick((630, 1000, 2000), r), _pick(models, r)
            else:
                low = max(bottom, -1)
                low += int(r() * (2 - low))
                high = low + 1
                speed, load, model = _pick((0.5, 0.65), r), None, _pick(_ESCALATOR_MODELS, r)
            inspected = reference - 1 - int(r() * 420)
            installed_on = date.fromordinal(installed)
            rows.append(
                RegistryRow(
                    f"{_KIND_CODE[kind]}{area_code}{installed_on.year:04d}{_sequence(index + 1)}",
                    str(rescue_codes[index]),
                    None if r() < without_terminal else f"T{index + 1:0{width}d}",
                    kind,
                    address,
                    district,
                    latitude,
                    longitude,
                    use_unit,
                    maintainer,
                    maker if r() < 0.97 else None,
                    model if r() < 0.9 else None,
                    installed_on,
                    speed,
                    load,
                    low,
                    high,
                    date.fromordinal(inspected),
                    date.fromordinal(inspected + 365),
                    r() < 0.93,
                )
            )
    return rows
