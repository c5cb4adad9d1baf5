"""Tax ids (GB 32100 USCC, legacy numbers) and the GBK text rules of invoice buyers: pure functions, no database."""
import json
from pathlib import Path

import pytest
from stdnum.cn import uscc as stdnum_uscc

from shared.finance import tax_ids, text_rules
from shared.services.errors import ValidationFailed

EXAMPLES = json.loads((Path(__file__).parent / "fixtures" / "finance" / "uscc_examples.json").read_text("utf-8"))
PUBLISHED = [entry["code"] for entry in EXAMPLES["published_valid"]]
CONSTRUCTED = {entry["code"][0]: entry["code"] for entry in EXAMPLES["constructed_valid"]}
XIAOMI = "91110108551385082Q"


def gb32100_check(first17: str) -> str:
    """The standard's check written out independently of the module: Σ(value × 3^i mod 31), 31 − Σ mod 31."""
    alphabet = "0123456789ABCDEFGHJKLMNPQRTUWXY"
    total = sum(alphabet.index(c) * pow(3, i, 31) for i, c in enumerate(first17))
    check = 31 - total % 31
    return "0" if check == 31 else alphabet[check]


@pytest.mark.parametrize("code", PUBLISHED + list(CONSTRUCTED.values()))
def test_published_and_constructed_codes_compute_and_are_accepted(code):
    assert gb32100_check(code[:17]) == code[17] == tax_ids.check_character(code[:17])
    assert tax_ids.validate(code) == code


def test_weights_are_the_standards():
    assert tax_ids.WEIGHTS == tuple(pow(3, i, 31) for i in range(17))
    assert tax_ids.WEIGHTS == (1, 3, 9, 27, 19, 26, 16, 17, 20, 29, 25, 13, 8, 24, 10, 30, 28)


def test_a_sum_divisible_by_31_gives_check_zero():
    """31 − (Σ mod 31) = 31 is written '0': find such a body and check both sides agree."""
    body = next(f"9111010{n:010d}" for n in range(10_000) if gb32100_check(f"9111010{n:010d}") == "0")
    assert tax_ids.check_character(body) == "0"
    assert tax_ids.validate(body + "0") == body + "0"


def test_a_published_code_from_an_early_pilot_fails_the_check():
    bad = EXAMPLES["published_invalid"][0]["code"]
    with pytest.raises(ValidationFailed) as refused:
        tax_ids.validate(bad)
    assert (refused.value.field, refused.value.code) == ("tax_id", "invalid_tax_id")
    assert "last character" in refused.value.message


@pytest.mark.parametrize("first", ["A", "N", "Y"])
def test_codes_of_the_a_n_y_authorities_are_valid_though_stdnum_refuses_them(first):
    """Why we do not use stdnum.cn.uscc: it wants eight digits first, so it refuses every A/N/Y code."""
    code = CONSTRUCTED[first]
    assert tax_ids.validate(code) == code
    assert not stdnum_uscc.is_valid(code)
    assert stdnum_uscc.is_valid(XIAOMI)  # it agrees with us on an ordinary code


def test_a_wrong_check_character_is_refused():
    wrong = XIAOMI[:17] + ("R" if XIAOMI[17] != "R" else "T")
    with pytest.raises(ValidationFailed) as refused:
        tax_ids.validate(wrong)
    assert refused.value.code == "invalid_tax_id"
    assert "last character" in refused.value.message


@pytest.mark.parametrize("letter", ["I", "O", "S", "V", "Z"])
def test_letters_outside_the_alphabet_are_refused_by_name(letter):
    code = XIAOMI[:10] + letter + XIAOMI[11:]
    with pytest.raises(ValidationFailed) as refused:
        tax_ids.validate(code)
    assert refused.value.code == "invalid_tax_id"
    assert f"character {letter} is not used" in refused.value.message


@pytest.mark.parametrize("code", [XIAOMI[:17], XIAOMI[:10], "9", ""])
def test_too_short_is_refused(code):
    with pytest.raises(ValidationFailed) as refused:
        tax_ids.validate(code)
    assert refused.value.code == "invalid_tax_id"


def test_a_wrong_first_character_is_refused():
    body = "B" + XIAOMI[1:17]
    with pytest.raises(ValidationFailed) as refused:
        tax_ids.validate(body + tax_ids.check_character(body))
    assert "cannot begin with B" in refused.value.message


def test_a_leading_zero_is_kept_and_only_spaces_and_case_change():
    assert tax_ids.normalise(" 9111 0108\u3000551385082q ") == XIAOMI
    legacy = "012345678901234"  # 15 characters, leading zero
    assert tax_ids.validate(legacy, legacy_allowed=True) == legacy
    assert tax_ids.normalise("0" + XIAOMI[1:]) == "0" + XIAOMI[1:]
    with pytest.raises(ValidationFailed):  # a USCC never starts with 0: refused, not "repaired"
        tax_ids.validate("0" + XIAOMI[1:])


def test_full_width_letters_are_not_folded():
    with pytest.raises(ValidationFailed):
        tax_ids.validate(XIAOMI[:17] + "Ｑ")


def test_legacy_numbers_only_where_allowed():
    assert tax_ids.validate("110108551385082", legacy_allowed=True) == "110108551385082"
    assert tax_ids.validate("11010819800101123X01", legacy_allowed=True) == "11010819800101123X01"
    with pytest.raises(ValidationFailed) as refused:
        tax_ids.validate("110108551385082")
    assert "18-character" in refused.value.message
    with pytest.raises(ValidationFailed):  # 18 characters are a USCC and must check, even where legacy is allowed
        tax_ids.validate(XIAOMI[:17] + "R", legacy_allowed=True)
    for bad in ("11010855138508", "110108551385082123456", "1101085513850-2"):
        with pytest.raises(ValidationFailed):
            tax_ids.validate(bad, legacy_allowed=True)


def test_gbk_lengths_and_limits():
    assert text_rules.gbk_length("北京ab", "name") == 6
    assert text_rules.invoice_name("北" * 50) == "北" * 50
    with pytest.raises(ValidationFailed) as refused:
        text_rules.invoice_name("北" * 50 + "a")
    assert (refused.value.field, refused.value.code) == ("name", "too_long")
    assert "101 bytes" in refused.value.message


@pytest.mark.parametrize("name", ["<script>公司", "某某>公司"])
def test_angle_brackets_are_forbidden_in_the_name(name):
    with pytest.raises(ValidationFailed) as refused:
        text_rules.invoice_name(name)
    assert (refused.value.field, refused.value.code) == ("name", "forbidden_character")


def test_a_character_gbk_cannot_encode_is_refused_by_name():
    with pytest.raises(ValidationFailed) as refused:
        text_rules.invoice_name("𠮷野家餐饮有限公司")
    assert refused.value.code == "unsupported_character"
    assert "𠮷" in refused.value.message


def test_address_and_phone_together_within_100_bytes():
    text_rules.address_and_phone("北" * 44, "010-12345678")  # 88 + 12 = 100
    with pytest.raises(ValidationFailed) as refused:
        text_rules.address_and_phone("北" * 45, "010-12345678")
    assert (refused.value.field, refused.value.code) == ("address", "too_long")
    with pytest.raises(ValidationFailed) as alone:
        text_rules.address_and_phone("北" * 51, "")
    assert (alone.value.field, alone.value.code) == ("address", "too_long")


def test_bank_and_account_together_within_100_bytes():
    text_rules.bank_and_account("中国工商银行北京分行", "0200" * 10)
    with pytest.raises(ValidationFailed) as refused:
        text_rules.bank_and_account("中国工商银行北京海淀区中关村支行营业部" * 2, "6222020200112233445" + "0" * 11)
    assert (refused.value.field, refused.value.code) == ("bank", "too_long")
    assert "106 bytes" in refused.value.message
