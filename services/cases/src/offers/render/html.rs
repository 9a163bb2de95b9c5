//! The offer as one self-contained HTML page (styles inline, nothing fetched), every value
//! escaped.

use std::fmt::Write as _;

use super::Document;

pub fn render(d: &Document) -> String {
    let label = |key: &str| escape(d.labels.get(key).map_or("", String::as_str));
    let lines_of = |lines: &[String]| {
        lines
            .iter()
            .map(|l| escape(l))
            .collect::<Vec<_>>()
            .join("<br>")
    };
    let mut page = String::with_capacity(8 * 1024 + d.lines.len() * 400);
    let _ = write!(
        page,
        r#"<!DOCTYPE html>
<html lang="{lang}-{region}">
<head>
<meta charset="utf-8">
<title>{heading}</title>
<style>
body {{ font-family: "Libertinus Serif", Georgia, serif; font-size: 10pt; margin: 2em; }}
header {{ display: flex; justify-content: space-between; gap: 2em; }}
table {{ border-collapse: collapse; margin-top: 1em; }}
th, td {{ border: 1px solid #999; padding: 4px 6px; vertical-align: top; }}
td.n {{ text-align: right; white-space: nowrap; }}
table.totals {{ margin-left: auto; }}
</style>
</head>
<body>
<header>
<div class="seller">{seller}</div>
<div class="meta"><h1>{document}</h1><p>{heading}<br>{date_label}: {date}<br>{valid_label}: {valid}</p></div>
</header>
<p><strong>{client_label}:</strong><br>{client}</p>
"#,
        lang = escape(&d.lang),
        region = escape(&d.region),
        heading = escape(&d.heading),
        seller = lines_of(&d.seller),
        document = label("document"),
        date_label = label("date"),
        date = escape(&d.date),
        valid_label = label("valid_until"),
        valid = escape(&d.valid_until),
        client_label = label("client"),
        client = lines_of(&d.client),
    );
    if !d.title.is_empty() {
        let _ = writeln!(page, "<h2>{}</h2>", escape(&d.title));
    }
    page.push_str("<table class=\"lines\">\n<thead><tr>");
    for key in [
        "number",
        "description",
        "quantity",
        "unit",
        "unit_price",
        "discount",
        "net",
        "tax_rate",
    ] {
        let _ = write!(page, "<th>{}</th>", label(key));
    }
    page.push_str("</tr></thead>\n<tbody>\n");
    for line in &d.lines {
        let _ = writeln!(
            page,
            "<tr><td class=\"n\">{}</td><td>{}</td><td class=\"n\">{}</td><td>{}</td>\
             <td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td></tr>",
            escape(&line.number),
            lines_of(&line.description),
            escape(&line.quantity),
            escape(&line.unit),
            escape(&line.unit_price),
            escape(&line.discount),
            escape(&line.net),
            escape(&line.tax_rate),
        );
    }
    page.push_str("</tbody>\n</table>\n<table class=\"totals\">\n<thead><tr>");
    for key in ["tax_rate", "net", "tax", "gross"] {
        let _ = write!(page, "<th>{}</th>", label(key));
    }
    page.push_str("</tr></thead>\n<tbody>\n");
    for rate in &d.rates {
        let _ = writeln!(
            page,
            "<tr><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td>\
             <td class=\"n\">{}</td></tr>",
            escape(&rate.rate),
            escape(&rate.net),
            escape(&rate.tax),
            escape(&rate.gross),
        );
    }
    let _ = writeln!(
        page,
        "<tr><th>{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th><th class=\"n\">{}</th></tr>\n\
         </tbody>\n</table>",
        label("total"),
        escape(&d.net),
        escape(&d.tax),
        escape(&d.gross),
    );
    if !d.coupon.is_empty() {
        let _ = writeln!(page, "<p>{}: {}</p>", label("coupon"), escape(&d.coupon));
    }
    if !d.notes.is_empty() {
        let _ = writeln!(
            page,
            "<p><strong>{}</strong><br>{}</p>",
            label("notes"),
            lines_of(&d.notes)
        );
    }
    page.push_str("</body>\n</html>\n");
    page
}

/// Text as HTML shows it, never as markup.
fn escape(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::escape;

    #[test]
    fn markup_in_values_is_shown_not_obeyed() {
        assert_eq!(
            escape("<script>alert('x')</script> & \"q\""),
            "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt; &amp; &quot;q&quot;"
        );
    }
}
