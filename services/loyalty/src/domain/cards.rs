//! Card numbers: 16 digits with a Luhn check digit, so a mistyped number is caught at the till.

use uuid::Uuid;

/// A new card number: a leading 7, 14 digits from a UUIDv7's random bits, and the check digit.
/// A card number as typed or scanned: the spaces and dashes it is printed with dropped.
pub fn typed_number(input: &str) -> String {
    input.chars().filter(|c| *c != ' ' && *c != '-').collect()
}

pub fn new_number() -> String {
    let random = Uuid::now_v7().as_u128() as u64 % 100_000_000_000_000;
    let body = format!("7{random:014}");
    format!("{body}{}", luhn_check_digit(&body))
}

/// The digit that makes `body` followed by it pass the Luhn check.
fn luhn_check_digit(body: &str) -> u32 {
    let sum: u32 = body
        .chars()
        .rev()
        .filter_map(|c| c.to_digit(10))
        .enumerate()
        .map(|(i, d)| {
            if i % 2 == 0 {
                if d * 2 > 9 { d * 2 - 9 } else { d * 2 }
            } else {
                d
            }
        })
        .sum();
    (10 - sum % 10) % 10
}

/// Whether a presented number is well formed: 16 digits passing the Luhn check.
pub fn valid_number(number: &str) -> bool {
    number.len() == 16
        && number.chars().all(|c| c.is_ascii_digit())
        && luhn_check_digit(&number[..15]) == number[15..].parse::<u32>().unwrap_or(10)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_carry_a_luhn_check_digit() {
        // A well-known Luhn example: 7992739871 has check digit 3.
        assert_eq!(luhn_check_digit("7992739871"), 3);
        for _ in 0..100 {
            let number = new_number();
            assert!(valid_number(&number), "{number}");
        }
        let mut typo = new_number().into_bytes();
        typo[3] = if typo[3] == b'9' { b'0' } else { typo[3] + 1 };
        assert!(
            !valid_number(&String::from_utf8(typo).unwrap()),
            "one wrong digit is caught"
        );
    }
}
