//! Coupon codes: unguessable, and forgiving of how people read and type them.

use uuid::Uuid;

/// Crockford's base32: no I, L, O or U, so codes survive being read aloud and typed.
const ALPHABET: &[u8; 32] = b"0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/// A new code: 60 random bits as 12 base32 characters, grouped XXXX-XXXX-XXXX.
pub fn new_code() -> String {
    let mut bits = Uuid::new_v4().as_u128();
    let chars: Vec<u8> = (0..12)
        .map(|_| {
            let c = ALPHABET[(bits & 31) as usize];
            bits >>= 5;
            c
        })
        .collect();
    let chars = String::from_utf8(chars).expect("the alphabet is ASCII");
    format!("{}-{}-{}", &chars[..4], &chars[4..8], &chars[8..])
}

/// A code as typed (any case, with or without dashes, I/L read as 1 and O as 0), in stored form.
pub fn normalize_code(raw: &str) -> Option<String> {
    let chars: String = raw
        .chars()
        .filter(|c| !matches!(c, '-' | ' '))
        .map(|c| match c.to_ascii_uppercase() {
            'I' | 'L' => '1',
            'O' => '0',
            c => c,
        })
        .collect();
    (chars.len() == 12 && chars.bytes().all(|b| ALPHABET.contains(&b)))
        .then(|| format!("{}-{}-{}", &chars[..4], &chars[4..8], &chars[8..]))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_are_readable_and_forgiving_to_type() {
        let code = new_code();
        assert_eq!(code.len(), 14);
        assert_eq!(
            normalize_code(&code.to_lowercase().replace('-', "")),
            Some(code.clone())
        );
        assert_eq!(
            normalize_code("ilo0-0000-0000"),
            Some("1100-0000-0000".into())
        );
        assert_eq!(
            normalize_code("UUUU-0000-0000"),
            None,
            "U is not in the alphabet"
        );
        assert_eq!(normalize_code("short"), None);
    }
}
