//! Command output: aligned tables for people, JSON (the API's own objects) for scripts.

use std::io::{ErrorKind, Write};

use serde_json::Value;

/// `println!` for command output: a closed pipe (`bullet-train audit | head -1`) ends the program
/// quietly, as it ends any Unix tool, instead of panicking.
macro_rules! outln {
    ($($arg:tt)*) => {
        $crate::output::write_line(format_args!($($arg)*))
    };
}

/// Writes one line to standard output (see [`outln!`]).
pub(crate) fn write_line(text: std::fmt::Arguments<'_>) {
    let mut out = std::io::stdout().lock();
    if let Err(e) = writeln!(out, "{text}").and_then(|()| out.flush()) {
        if e.kind() == ErrorKind::BrokenPipe {
            std::process::exit(0);
        }
        eprintln!("error: writing to standard output: {e}");
        std::process::exit(1);
    }
}

/// How results are printed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub(crate) enum Format {
    Table,
    Json,
}

/// Text of a JSON value in a table cell: strings bare, null empty, everything else as JSON.
pub(crate) fn cell(value: &Value) -> String {
    match value {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        other => other.to_string(),
    }
}

/// Prints rows under headers, columns padded to their widest cell.
pub(crate) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for row in rows {
        for (i, value) in row.iter().enumerate() {
            if let Some(w) = widths.get_mut(i) {
                *w = (*w).max(value.chars().count());
            }
        }
    }
    let line = |cells: Vec<String>| -> String {
        let padded: Vec<String> = cells
            .iter()
            .enumerate()
            .map(|(i, c)| format!("{c:<width$}", width = widths[i]))
            .collect();
        padded.join("  ").trim_end().to_owned()
    };
    let mut out = vec![line(headers.iter().map(|h| h.to_uppercase()).collect())];
    out.extend(rows.iter().map(|r| line(r.clone())));
    out.join("\n")
}

/// Prints objects as JSON, or as a table of the given `(header, field)` columns.
pub(crate) fn print(format: Format, value: &Value, columns: &[(&str, &str)]) {
    match format {
        Format::Json => outln!(
            "{}",
            serde_json::to_string_pretty(value).unwrap_or_default()
        ),
        Format::Table => {
            let items: Vec<&Value> = match value {
                Value::Array(items) => items.iter().collect(),
                other => vec![other],
            };
            let rows: Vec<Vec<String>> = items
                .iter()
                .map(|item| {
                    columns
                        .iter()
                        .map(|(_, field)| cell(&pointer(item, field)))
                        .collect()
                })
                .collect();
            let headers: Vec<&str> = columns.iter().map(|(h, _)| *h).collect();
            outln!("{}", table(&headers, &rows));
        }
    }
}

/// A field by dotted path (`feature.name`).
pub(crate) fn pointer(item: &Value, field: &str) -> Value {
    let path = format!("/{}", field.replace('.', "/"));
    item.pointer(&path).cloned().unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tables_align_columns() {
        let out = table(
            &["name", "enabled"],
            &[
                vec!["checkout".into(), "true".into()],
                vec!["x".into(), "false".into()],
            ],
        );
        assert_eq!(out, "NAME      ENABLED\ncheckout  true\nx         false");
    }
}
