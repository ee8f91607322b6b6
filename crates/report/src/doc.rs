//! A report as a list of blocks, rendered to Markdown and to HTML from the same content.

pub enum Block {
    Heading(u8, String),
    Paragraph(String),
    Table {
        header: Vec<String>,
        rows: Vec<Vec<String>>,
    },
    /// An SVG next to the report, by relative path.
    Image {
        path: String,
        alt: String,
    },
}

/// Writes `dir/report.md` and `dir/report.html` (titled `title`) and returns the first's path.
pub fn write_card(
    dir: &std::path::Path,
    title: &str,
    blocks: &[Block],
) -> anyhow::Result<std::path::PathBuf> {
    let md = dir.join("report.md");
    data::atomic::write(&md, markdown(blocks))?;
    data::atomic::write(&dir.join("report.html"), html(title, blocks))?;
    Ok(md)
}

pub fn markdown(blocks: &[Block]) -> String {
    let mut out = String::new();
    for block in blocks {
        match block {
            Block::Heading(level, text) => {
                out.push_str(&format!("{} {text}\n\n", "#".repeat(*level as usize)))
            }
            Block::Paragraph(text) => out.push_str(&format!("{text}\n\n")),
            Block::Table { header, rows } => {
                out.push_str(&format!("| {} |\n", header.join(" | ")));
                out.push_str(&format!("|{}\n", "---|".repeat(header.len())));
                for row in rows {
                    out.push_str(&format!("| {} |\n", row.join(" | ")));
                }
                out.push('\n');
            }
            Block::Image { path, alt } => out.push_str(&format!("![{alt}]({path})\n\n")),
        }
    }
    out
}

pub fn html(title: &str, blocks: &[Block]) -> String {
    let mut out = format!(
        "<!doctype html>\n<html><head><meta charset=\"utf-8\"><title>{}</title>\n<style>\
         body{{font-family:sans-serif;max-width:960px;margin:2em auto;padding:0 1em;color:#222}}\
         table{{border-collapse:collapse;margin:1em 0}}td,th{{border:1px solid #bbb;padding:4px 10px;text-align:right}}\
         th{{background:#f0f0f0}}td:first-child,th:first-child{{text-align:left}}img{{max-width:100%}}\
         code{{background:#f4f4f4;padding:1px 4px}}</style></head><body>\n",
        escape(title)
    );
    for block in blocks {
        match block {
            Block::Heading(level, text) => {
                out.push_str(&format!("<h{level}>{}</h{level}>\n", inline(text)))
            }
            Block::Paragraph(text) => out.push_str(&format!("<p>{}</p>\n", inline(text))),
            Block::Table { header, rows } => {
                out.push_str("<table><tr>");
                for h in header {
                    out.push_str(&format!("<th>{}</th>", inline(h)));
                }
                out.push_str("</tr>\n");
                for row in rows {
                    out.push_str("<tr>");
                    for cell in row {
                        out.push_str(&format!("<td>{}</td>", inline(cell)));
                    }
                    out.push_str("</tr>\n");
                }
                out.push_str("</table>\n");
            }
            Block::Image { path, alt } => out.push_str(&format!(
                "<p><img src=\"{}\" alt=\"{}\"></p>\n",
                escape(path),
                escape(alt)
            )),
        }
    }
    out.push_str("</body></html>\n");
    out
}

fn escape(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

/// Markdown's `code` and **bold** spans, as HTML.
fn inline(text: &str) -> String {
    let mut out = String::new();
    let escaped = escape(text);
    let mut code = false;
    for (i, part) in escaped.split('`').enumerate() {
        if i > 0 {
            out.push_str(if code { "</code>" } else { "<code>" });
            code = !code;
        }
        let mut bold = false;
        for (j, piece) in part.split("**").enumerate() {
            if j > 0 && !code {
                out.push_str(if bold { "</b>" } else { "<b>" });
                bold = !bold;
            } else if j > 0 {
                out.push_str("**");
            }
            out.push_str(piece);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_tables_and_inline_markup_both_ways() {
        let blocks = vec![
            Block::Heading(2, "SFT".into()),
            Block::Paragraph("run `xtask` for **99%**".into()),
            Block::Table {
                header: vec!["K".into(), "acc".into()],
                rows: vec![vec!["2".into(), "<1>".into()]],
            },
        ];
        let md = markdown(&blocks);
        assert!(md.contains("## SFT") && md.contains("| 2 | <1> |"));
        let page = html("r", &blocks);
        assert!(page.contains("<code>xtask</code>") && page.contains("<b>99%</b>"));
        assert!(page.contains("<td>&lt;1&gt;</td>"));
    }
}
