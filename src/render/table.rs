//! Plain text tables, as `status` prints them: a header row, columns padded to their widest
//! cell, every cell escaped.

use super::escape;

/// A plain text table with a header row.
pub(super) fn table(headers: &[&str], rows: &[Vec<String>]) -> String {
    let rows: Vec<Vec<Vec<String>>> = rows
        .iter()
        .map(|r| r.iter().map(|c| vec![c.clone()]).collect())
        .collect();
    table_lines(headers, &rows)
}

/// A plain text table with a header row, whose cells may take several lines (one database per
/// line): a row is as tall as its tallest cell, the other cells blank below their first line.
pub(super) fn table_lines(headers: &[&str], rows: &[Vec<Vec<String>>]) -> String {
    // Cells hold names and subjects from files and the registry: escaped line by line, so that
    // none can rewrite the terminal or break the row.
    let rows: Vec<Vec<Vec<String>>> = rows
        .iter()
        .map(|r| {
            r.iter()
                .map(|cell| cell.iter().map(|l| escape(l).into_owned()).collect())
                .collect()
        })
        .collect();
    let mut widths: Vec<usize> = headers.iter().map(|h| h.chars().count()).collect();
    for r in &rows {
        for (i, cell) in r.iter().enumerate() {
            for l in cell {
                widths[i] = widths[i].max(l.chars().count());
            }
        }
    }
    let mut out = String::new();
    let line = |cells: Vec<&str>, out: &mut String| {
        let mut l = String::new();
        for (i, c) in cells.iter().enumerate() {
            l.push_str(c);
            if i + 1 < cells.len() {
                let pad = widths[i] - c.chars().count();
                l.push_str(&" ".repeat(pad + 2));
            }
        }
        out.push_str(l.trim_end());
        out.push('\n');
    };
    line(headers.to_vec(), &mut out);
    for r in &rows {
        let height = r.iter().map(Vec::len).max().unwrap_or(0).max(1);
        for n in 0..height {
            let cells = r
                .iter()
                .map(|cell| cell.get(n).map_or("", String::as_str))
                .collect();
            line(cells, &mut out);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn table_aligns_columns() {
        let t = table(
            &["Name", "Clearance"],
            &[vec!["admin".into(), "ClusterAdmin".into()]],
        );
        assert_eq!(t, "Name   Clearance\nadmin  ClusterAdmin\n");
    }
}
