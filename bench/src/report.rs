//! What a scenario prints: a table for people, one JSON line for programs.

use std::time::Duration;

use serde_json::Value;

/// A table printed with aligned columns.
#[derive(Debug)]
pub(crate) struct Table {
    title: String,
    header: Vec<String>,
    rows: Vec<Vec<String>>,
}

impl Table {
    pub(crate) fn new(title: impl Into<String>, header: &[&str]) -> Self {
        Table {
            title: title.into(),
            header: header.iter().map(|h| (*h).to_owned()).collect(),
            rows: Vec::new(),
        }
    }

    pub(crate) fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub(crate) fn print(&self) {
        let columns = self.header.len();
        let mut width = vec![0; columns];
        for row in std::iter::once(&self.header).chain(&self.rows) {
            for (w, cell) in width.iter_mut().zip(row) {
                *w = (*w).max(cell.chars().count());
            }
        }
        println!("\n{}", self.title);
        let line = |row: &[String]| {
            let cells: Vec<String> = row
                .iter()
                .zip(&width)
                .map(|(cell, w)| format!("{cell:>w$}"))
                .collect();
            println!("| {} |", cells.join(" | "));
        };
        line(&self.header);
        println!(
            "|{}|",
            width
                .iter()
                .map(|w| "-".repeat(w + 2))
                .collect::<Vec<_>>()
                .join("|")
        );
        for row in &self.rows {
            line(row);
        }
    }
}

/// Print the scenario's machine-readable result as one line.
pub(crate) fn json_line(scenario: &str, rows: Vec<Value>) {
    let line = serde_json::json!({ "scenario": scenario, "rows": rows });
    println!("{line}");
}

/// Latency percentiles over a set of samples.
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct Percentiles {
    pub(crate) p50: Duration,
    pub(crate) p99: Duration,
    pub(crate) max: Duration,
}

impl Percentiles {
    pub(crate) fn of(samples: &mut [Duration]) -> Self {
        if samples.is_empty() {
            return Percentiles::default();
        }
        samples.sort_unstable();
        let at = |p: f64| {
            let i = ((samples.len() - 1) as f64 * p).round() as usize;
            samples[i.min(samples.len() - 1)]
        };
        Percentiles {
            p50: at(0.50),
            p99: at(0.99),
            max: samples[samples.len() - 1],
        }
    }
}

/// `1.23 ms`, `456 µs`.
pub(crate) fn ms(d: Duration) -> String {
    let us = d.as_secs_f64() * 1e6;
    if us >= 1000.0 {
        format!("{:.2} ms", us / 1000.0)
    } else {
        format!("{us:.0} µs")
    }
}

/// `12,345`.
pub(crate) fn count(n: f64) -> String {
    let n = n.round() as u64;
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// `71%`.
pub(crate) fn ratio(ours: f64, raw: f64) -> String {
    if raw > 0.0 {
        format!("{:.0}%", 100.0 * ours / raw)
    } else {
        "-".into()
    }
}

/// `12.3 KiB`.
pub(crate) fn kib(bytes: f64) -> String {
    format!("{:.1} KiB", bytes / 1024.0)
}

/// Milliseconds as a JSON number with µs precision.
pub(crate) fn ms_f(d: Duration) -> f64 {
    (d.as_secs_f64() * 1e6).round() / 1e3
}
