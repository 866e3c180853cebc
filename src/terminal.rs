//! Human-readable output: how text from outside reaches a terminal.
//!
//! User names, user agents, source IPs, resource names, file names, triage
//! reasons and remote error messages are chosen by whoever made the API call
//! or wrote the record. A terminal obeys what they contain: ESC sequences
//! clear the screen, move the cursor, set the window title or hide text; C1
//! controls (U+009B is a one-character CSI) do the same on some terminals;
//! line breaks forge rows; and the Unicode bidi controls (U+202E, U+2066–2069)
//! and other invisible format characters reorder or hide what is displayed, so
//! `evil\u{202e}gnp.exe` reads as `evilexe.png`. Every human-readable output (tables,
//! `alarms show`, messages, human-format log lines) passes such text through
//! this module, which shows each of those characters as a visible escape
//! (`\x1b`, `\u{202e}`) and leaves everything else as it is. JSON output does
//! not come here: serde escapes control characters and keeps the data exact.
//!
//! Column widths are display widths of the escaped text (CJK characters take
//! two columns), and a cell that does not fit ends with `…`.

use std::borrow::Cow;
use std::fmt::{self, Write as _};
use std::io;

use unicode_width::UnicodeWidthChar;

/// Whether `c` must not reach a terminal as it is: every control character
/// (C0 including ESC, tab and line breaks, DEL, C1), the line and paragraph
/// separators, and every format character (Unicode category Cf: bidi embeddings,
/// overrides, isolates and marks, zero-width spaces and joiners, the BOM, tag
/// characters …), which change how the text around them is displayed.
pub fn needs_escape(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{00AD}'
                | '\u{0600}'..='\u{0605}'
                | '\u{061C}'
                | '\u{06DD}'
                | '\u{070F}'
                | '\u{0890}'..='\u{0891}'
                | '\u{08E2}'
                | '\u{180E}'
                | '\u{200B}'..='\u{200F}'
                | '\u{2028}'..='\u{202E}'
                | '\u{2060}'..='\u{2064}'
                | '\u{2066}'..='\u{206F}'
                | '\u{FEFF}'
                | '\u{FFF9}'..='\u{FFFB}'
                | '\u{110BD}'
                | '\u{110CD}'
                | '\u{13430}'..='\u{1343F}'
                | '\u{1BCA0}'..='\u{1BCA3}'
                | '\u{1D173}'..='\u{1D17A}'
                | '\u{E0001}'
                | '\u{E0020}'..='\u{E007F}'
        )
}

/// Write the visible escape of one character (`\n`, `\x1b`, `\u{202e}`).
fn write_escape(out: &mut impl fmt::Write, c: char) -> fmt::Result {
    match c {
        '\n' => out.write_str("\\n"),
        '\r' => out.write_str("\\r"),
        '\t' => out.write_str("\\t"),
        c if (c as u32) < 0x80 => write!(out, "\\x{:02x}", c as u32),
        c => write!(out, "\\u{{{:x}}}", c as u32),
    }
}

/// `text` with every character of `needs_escape` replaced by its visible
/// escape; borrowed when there is nothing to escape (the usual case).
pub fn escape(text: &str) -> Cow<'_, str> {
    let Some(first) = text.find(needs_escape) else {
        return Cow::Borrowed(text);
    };
    let mut out = String::with_capacity(text.len() + 8);
    out.push_str(&text[..first]);
    for c in text[first..].chars() {
        if needs_escape(c) {
            // Writing to a String cannot fail.
            let _ = write_escape(&mut out, c);
        } else {
            out.push(c);
        }
    }
    Cow::Owned(out)
}

/// Multi-line text of our own making (an error with its diagnostics, a test
/// failure with one line per event) escaped line by line: its line breaks
/// stay, anything inside a line is escaped as by `escape`.
pub fn escape_lines(text: &str) -> String {
    text.split('\n')
        .map(|line| escape(line.strip_suffix('\r').unwrap_or(line)))
        .collect::<Vec<_>>()
        .join("\n")
}

/// Columns `text` takes on a terminal, once escaped.
pub fn width(text: &str) -> usize {
    escape(text).chars().map(char_width).sum()
}

fn char_width(c: char) -> usize {
    c.width().unwrap_or(0)
}

/// `text` escaped and cut to at most `max` columns: a longer text keeps what
/// fits and ends with `…`. An escape sequence is never cut in the middle.
/// Returns the text and its width.
pub fn fit(text: &str, max: usize) -> (String, usize) {
    let escaped = escape(text);
    let full: usize = escaped.chars().map(char_width).sum();
    if full <= max {
        return (escaped.into_owned(), full);
    }
    if max == 0 {
        return (String::new(), 0);
    }
    let budget = max - 1;
    let mut out = String::new();
    let mut used = 0;
    let mut unit = String::new();
    for c in text.chars() {
        unit.clear();
        if needs_escape(c) {
            let _ = write_escape(&mut unit, c);
        } else {
            unit.push(c);
        }
        let unit_width: usize = unit.chars().map(char_width).sum();
        if used + unit_width > budget {
            break;
        }
        out.push_str(&unit);
        used += unit_width;
    }
    out.push('…');
    (out, used + 1)
}

/// Text for a terminal: `format!("{:<28.28}", show(name))` escapes `name`,
/// cuts it to 28 columns with `…` (the precision is a most-columns limit) and
/// pads it to 28 columns by display width (the width, alignment and fill are
/// honoured as for `str`).
pub fn show(text: &str) -> Shown<'_> {
    Shown(text)
}

/// See `show`.
pub struct Shown<'a>(&'a str);

impl fmt::Display for Shown<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (text, used) = match f.precision() {
            Some(max) => fit(self.0, max),
            None => {
                let escaped = escape(self.0);
                let used = escaped.chars().map(char_width).sum();
                (escaped.into_owned(), used)
            }
        };
        let padding = f.width().unwrap_or(0).saturating_sub(used);
        let (before, after) = match f.align() {
            Some(fmt::Alignment::Right) => (padding, 0),
            Some(fmt::Alignment::Center) => (padding / 2, padding - padding / 2),
            _ => (0, padding),
        };
        let fill = f.fill();
        for _ in 0..before {
            f.write_char(fill)?;
        }
        f.write_str(&text)?;
        for _ in 0..after {
            f.write_char(fill)?;
        }
        Ok(())
    }
}

/// "1 time", "3 times": a count with its noun in the right number.
pub fn count_of(count: u64, singular: &str, plural: &str) -> String {
    format!("{count} {}", if count == 1 { singular } else { plural })
}

/// How a column's cells are aligned.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Align {
    Left,
    Right,
}

/// One column of a `Table`.
#[derive(Clone, Debug)]
pub struct Column {
    header: &'static str,
    align: Align,
    /// Widest the column gets; longer cells are cut with `…`. The last
    /// column is never cut or padded (it is where long free text goes).
    max: usize,
}

impl Column {
    pub fn left(header: &'static str, max: usize) -> Column {
        Column {
            header,
            align: Align::Left,
            max,
        }
    }

    pub fn right(header: &'static str, max: usize) -> Column {
        Column {
            header,
            align: Align::Right,
            max,
        }
    }
}

/// A table printed at once: each column as wide as its widest (escaped)
/// cell, up to its limit, so that short values make narrow columns and
/// long ones cannot push the next columns out of line.
#[derive(Clone, Debug)]
pub struct Table {
    columns: Vec<Column>,
    rows: Vec<Vec<String>>,
    /// Printed before every line (nested tables in `alarms show`).
    indent: &'static str,
}

/// Between two columns.
const GAP: &str = "  ";

impl Table {
    pub fn new(columns: Vec<Column>) -> Table {
        Table {
            columns,
            rows: Vec::new(),
            indent: "",
        }
    }

    pub fn indented(mut self, indent: &'static str) -> Table {
        self.indent = indent;
        self
    }

    /// Add a row of raw cells (escaped when printed); missing cells are empty.
    pub fn row(&mut self, cells: Vec<String>) {
        self.rows.push(cells);
    }

    pub fn is_empty(&self) -> bool {
        self.rows.is_empty()
    }

    /// The table as text, one line per row after the header, each ending in `\n`.
    pub fn render(&self) -> String {
        let last = self.columns.len().saturating_sub(1);
        let widths: Vec<usize> = self
            .columns
            .iter()
            .enumerate()
            .map(|(index, column)| {
                let widest = self
                    .rows
                    .iter()
                    .filter_map(|row| row.get(index))
                    .map(|cell| width(cell))
                    .max()
                    .unwrap_or(0)
                    .max(width(column.header));
                if index == last {
                    widest
                } else {
                    widest.min(column.max.max(width(column.header)))
                }
            })
            .collect();
        let mut out = String::new();
        let header: Vec<String> = self.columns.iter().map(|column| column.header.to_string()).collect();
        self.render_line(&mut out, &header, &widths);
        for row in &self.rows {
            self.render_line(&mut out, row, &widths);
        }
        out
    }

    fn render_line(&self, out: &mut String, cells: &[String], widths: &[usize]) {
        let last = self.columns.len().saturating_sub(1);
        out.push_str(self.indent);
        for (index, column) in self.columns.iter().enumerate() {
            let cell = cells.get(index).map_or("", String::as_str);
            if index == last {
                if column.align == Align::Right {
                    let _ = write!(out, "{:>width$}", show(cell), width = widths[index]);
                } else {
                    out.push_str(&escape(cell));
                }
                break;
            }
            let _ = match column.align {
                Align::Left => write!(out, "{:<width$.width$}", show(cell), width = widths[index]),
                Align::Right => write!(out, "{:>width$.width$}", show(cell), width = widths[index]),
            };
            out.push_str(GAP);
        }
        // A last cell that was empty leaves trailing spaces: drop them.
        let trimmed = out.trim_end_matches(' ').len();
        out.truncate(trimmed);
        out.push('\n');
    }

    /// Print the table to `out`.
    pub fn write_to(&self, out: &mut dyn io::Write) -> io::Result<()> {
        out.write_all(self.render().as_bytes())
    }
}

/// The field formatter of human-format log lines: like tracing-subscriber's
/// default (`name=value`, the message bare), with every value escaped here.
/// (Its own sanitising leaves `%field` values, line breaks and bidi controls
/// as they are.) One log record stays one line.
pub fn log_fields() -> impl for<'writer> tracing_subscriber::fmt::FormatFields<'writer> + 'static {
    use tracing_subscriber::field::MakeExt;
    tracing_subscriber::fmt::format::debug_fn(|writer, field, value| {
        let text = format!("{value:?}");
        if field.name() == "message" {
            write!(writer, "{}", escape(&text))
        } else {
            let name = field.name().strip_prefix("r#").unwrap_or(field.name());
            write!(writer, "{name}={}", escape(&text))
        }
    })
    .delimited(" ")
}

/// A status line on stderr for long commands (`replay`, `backfill`),
/// redrawn four times a second from `line(elapsed)`, only when stderr is a
/// terminal: piped or logged, a command prints nothing but its summary.
/// Erased when dropped, before the summary is printed.
pub struct Progress {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Progress {
    pub fn start(mut line: impl FnMut(std::time::Duration) -> String + Send + 'static) -> Progress {
        use std::io::IsTerminal;
        use std::sync::atomic::Ordering;
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        if !io::stderr().is_terminal() {
            return Progress { stop, thread: None };
        }
        let thread = {
            let stop = stop.clone();
            std::thread::Builder::new()
                .name("tw-progress".into())
                .spawn(move || {
                    let started = std::time::Instant::now();
                    let columns = stderr_columns();
                    let mut drawn = false;
                    while !stop.load(Ordering::Acquire) {
                        std::thread::sleep(std::time::Duration::from_millis(250));
                        if stop.load(Ordering::Acquire) {
                            break;
                        }
                        draw_status_within(&line(started.elapsed()), columns);
                        drawn = true;
                    }
                    if drawn {
                        clear_status();
                    }
                })
                .ok()
        };
        Progress { stop, thread }
    }
}

impl Drop for Progress {
    fn drop(&mut self) {
        self.stop.store(true, std::sync::atomic::Ordering::Release);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// Draw `text` as the status line on stderr (a terminal), in place of the last.
pub fn draw_status(text: &str) {
    draw_status_within(text, stderr_columns());
}

fn draw_status_within(text: &str, columns: usize) {
    use std::io::Write;
    let (text, _) = fit(&escape(text), columns.saturating_sub(1));
    let _ = write!(io::stderr().lock(), "\r\x1b[2K{text}");
}

/// Erase the status line.
pub fn clear_status() {
    use std::io::Write;
    let _ = write!(io::stderr().lock(), "\r\x1b[2K");
}

/// The width of the terminal stderr is on (80 when it cannot be told).
fn stderr_columns() -> usize {
    #[cfg(unix)]
    {
        // SAFETY: TIOCGWINSZ fills the zeroed winsize it is given, or fails.
        let mut size: libc::winsize = unsafe { std::mem::zeroed() };
        if unsafe { libc::ioctl(libc::STDERR_FILENO, libc::TIOCGWINSZ, &mut size) } == 0 && size.ws_col > 0 {
            return usize::from(size.ws_col);
        }
    }
    80
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn control_bidi_and_format_characters_become_visible_escapes() {
        assert_eq!(escape("deploy-bot"), "deploy-bot");
        assert!(matches!(escape("deploy-bot"), Cow::Borrowed(_)));
        assert_eq!(escape("a\x1b[2Jb"), "a\\x1b[2Jb");
        assert_eq!(escape("bell\x07 del\x7f"), "bell\\x07 del\\x7f");
        assert_eq!(escape("csi\u{9b}31m"), "csi\\u{9b}31m");
        assert_eq!(escape("evil\u{202e}gnp.exe"), "evil\\u{202e}gnp.exe");
        assert_eq!(
            escape("\u{2066}a\u{2067}b\u{2068}c\u{2069}"),
            "\\u{2066}a\\u{2067}b\\u{2068}c\\u{2069}"
        );
        assert_eq!(escape("zero\u{200b}width\u{feff}"), "zero\\u{200b}width\\u{feff}");
        assert_eq!(escape("tag\u{e0041}"), "tag\\u{e0041}");
        assert_eq!(escape("two\nlines\r\tx"), "two\\nlines\\r\\tx");
        assert_eq!(escape_lines("a\x1b\n  b\r\nc\u{202e}"), "a\\x1b\n  b\nc\\u{202e}");
        // Ordinary non-ASCII text is data, not an attack.
        assert_eq!(escape("张三 Zoë ✓"), "张三 Zoë ✓");
        let every: String = ('\0'..='\u{10FFFF}').filter(|c| needs_escape(*c)).collect();
        assert!(!escape(&every).chars().any(needs_escape));
    }

    #[test]
    fn widths_are_display_columns_of_the_escaped_text() {
        assert_eq!(width("abc"), 3);
        assert_eq!(width("张三"), 4);
        assert_eq!(width("a\x1bb"), 6);
        assert_eq!(format!("[{:<6}]", show("张三")), "[张三  ]");
        assert_eq!(format!("[{:>8}]", show("a\x1b")), "[   a\\x1b]");
        assert_eq!(format!("[{:<5.5}]", show("abcdefgh")), "[abcd…]");
        assert_eq!(format!("[{:<5.5}]", show("张三李四")), "[张三…]");
        // A wide character that does not fit leaves a column of padding.
        assert_eq!(format!("[{:<6.6}]", show("张三李四")), "[张三… ]");
    }

    #[test]
    fn cutting_never_splits_an_escape() {
        assert_eq!(fit("ab\x1bcdef", 5), ("ab…".to_string(), 3));
        assert_eq!(fit("ab\x1bcdef", 7), ("ab\\x1b…".to_string(), 7));
        assert_eq!(fit("abc", 3), ("abc".to_string(), 3));
        assert_eq!(fit("abc", 0), (String::new(), 0));
    }

    #[test]
    fn counts_agree_with_their_noun() {
        assert_eq!(count_of(1, "time", "times"), "1 time");
        assert_eq!(count_of(0, "time", "times"), "0 times");
        assert_eq!(count_of(2, "time", "times"), "2 times");
    }

    #[test]
    fn table_columns_fit_their_cells_and_long_cells_are_cut() {
        let mut table = Table::new(vec![
            Column::right("ID", 6),
            Column::left("NAME", 8),
            Column::left("NOTE", 4),
        ]);
        table.row(vec!["7".into(), "a-very-long-name".into(), "free text, not cut".into()]);
        table.row(vec!["12".into(), "bob\x1b[2J".into(), String::new()]);
        let text = table.render();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines[0], "ID  NAME      NOTE");
        assert_eq!(lines[1], " 7  a-very-…  free text, not cut");
        assert_eq!(lines[2], "12  bob\\x1b…");
        assert!(!text.contains('\x1b'));
        // Every column starts at the same place on every line.
        let starts = |line: &str| {
            let at = line.find("NOTE").or_else(|| line.find("free")).unwrap_or(0);
            width(&line[..at])
        };
        assert_eq!(starts(lines[0]), starts(lines[1]));
    }
}
