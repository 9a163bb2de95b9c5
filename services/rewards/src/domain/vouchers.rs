//! Voucher codes: reading a partner's CSV file, and making codes of our own.

use chrono::NaiveDate;

/// Largest file ImportVoucherCodes reads.
pub const MAX_FILE_BYTES: usize = 1 << 20;

/// Bad lines named at most this many at a time: enough to fix a file, not a flood.
const MAX_PROBLEMS: usize = 20;

/// One code of a partner's file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ImportedCode {
    pub code: String,
    /// The partner's own last valid day.
    pub valid_until: Option<NaiveDate>,
}

/// Reads a partner's file: `code[,valid_until]` per line, an optional `code` header, blank lines
/// ignored. All or nothing: any bad line refuses the file, each named with its line number.
pub fn parse_codes(file: &[u8]) -> Result<Vec<ImportedCode>, Vec<String>> {
    if file.len() > MAX_FILE_BYTES {
        return Err(vec![format!(
            "is {} bytes; at most {MAX_FILE_BYTES} are read at once (split the file)",
            file.len()
        )]);
    }
    let file = file.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(file);
    let mut reader = csv::ReaderBuilder::new()
        .has_headers(false)
        .flexible(true)
        .trim(csv::Trim::All)
        .from_reader(file);
    let mut codes = Vec::new();
    let mut problems = Vec::new();
    for (index, record) in reader.byte_records().enumerate() {
        let line = index + 1;
        let record = match record {
            Ok(record) => record,
            Err(error) => {
                problems.push(format!("line {line}: {}", describe(&error)));
                break;
            }
        };
        let field = |i: usize| {
            record
                .get(i)
                .map(|f| String::from_utf8_lossy(f).into_owned())
        };
        let code = field(0).unwrap_or_default();
        if record.iter().all(<[u8]>::is_empty) || (line == 1 && code.eq_ignore_ascii_case("code")) {
            continue;
        }
        match read_line(&code, field(1).as_deref(), record.len()) {
            Ok(parsed) => codes.push(parsed),
            Err(why) => problems.push(format!("line {line}: {why}")),
        }
        if problems.len() == MAX_PROBLEMS {
            break;
        }
    }
    if codes.is_empty() && problems.is_empty() {
        problems.push("holds no codes".to_owned());
    }
    if problems.is_empty() {
        Ok(codes)
    } else {
        Err(problems)
    }
}

fn read_line(
    code: &str,
    valid_until: Option<&str>,
    columns: usize,
) -> Result<ImportedCode, String> {
    if columns > 2 {
        return Err(format!(
            "has {columns} columns; a line is code[,valid_until]"
        ));
    }
    if !valid_code(code) {
        return Err(format!(
            "{:?} is not a code: 4 to 64 printable ASCII characters without spaces",
            truncated(code)
        ));
    }
    let valid_until = match valid_until.filter(|d| !d.is_empty()) {
        None => None,
        Some(date) => Some(
            NaiveDate::parse_from_str(date, "%Y-%m-%d")
                .map_err(|_| format!("{:?} is not a date (YYYY-MM-DD)", truncated(date)))?,
        ),
    };
    Ok(ImportedCode {
        code: code.to_owned(),
        valid_until,
    })
}

/// What a partner's code may be: 4 to 64 printable ASCII characters without spaces.
pub fn valid_code(code: &str) -> bool {
    (4..=64).contains(&code.len()) && code.bytes().all(|b| b.is_ascii_graphic())
}

fn truncated(text: &str) -> String {
    text.chars().take(70).collect()
}

fn describe(error: &csv::Error) -> String {
    match error.kind() {
        csv::ErrorKind::Utf8 { .. } => "is not UTF-8".to_owned(),
        _ => "is not a CSV line".to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_codes_with_an_optional_header_and_dates() {
        let file = b"\xEF\xBB\xBFcode,valid_until\nABCD-1234\n\n\"EFGH-5678\" , 2027-03-31\n";
        let codes = parse_codes(file).unwrap();
        assert_eq!(
            codes,
            [
                ImportedCode {
                    code: "ABCD-1234".into(),
                    valid_until: None
                },
                ImportedCode {
                    code: "EFGH-5678".into(),
                    valid_until: NaiveDate::from_ymd_opt(2027, 3, 31)
                },
            ]
        );
    }

    #[test]
    fn refuses_the_whole_file_naming_each_bad_line() {
        let file = b"GOOD-0001\nab\nGOOD-0002,31/03/2027\nhas space\nX,Y,Z\n";
        let problems = parse_codes(file).unwrap_err();
        assert_eq!(problems.len(), 4, "{problems:?}");
        assert!(problems[0].starts_with("line 2:"), "{problems:?}");
        assert!(problems[1].starts_with("line 3:") && problems[1].contains("date"));
        assert!(problems[2].starts_with("line 4:"));
        assert!(problems[3].starts_with("line 5:") && problems[3].contains("3 columns"));
    }

    #[test]
    fn refuses_empty_huge_and_binary_files() {
        assert_eq!(parse_codes(b"code\n\n").unwrap_err(), ["holds no codes"]);
        assert!(parse_codes(&vec![b'A'; MAX_FILE_BYTES + 1]).is_err());
        assert!(parse_codes(b"ABCD\xff\xfe1234\n").is_err());
        assert!(parse_codes(b"ABC\x00DEF\n").is_err());
    }

    #[test]
    fn names_at_most_twenty_problems() {
        let file = "x\n".repeat(1000);
        assert_eq!(
            parse_codes(file.as_bytes()).unwrap_err().len(),
            MAX_PROBLEMS
        );
    }
}
