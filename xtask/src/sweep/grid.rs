//! `--grid KEY=V1,V2` (repeatable): settings crossed with each other and with the seeds. Each
//! combination is a cell, a folder named after its settings in Hydra's multirun style
//! (`dpo.loss.loss_type=sigmoid,rlvr.beta=0.1`), holding one ordinary run per seed.

use anyhow::{bail, Result};

/// One `--grid` item: a setting and the values it takes, in the order given.
#[derive(Debug, Clone, PartialEq)]
pub struct Axis {
    pub key: String,
    pub values: Vec<String>,
}

impl Axis {
    /// `dpo.loss.loss_type=sigmoid,orpo`. Values are split at the commas outside brackets and
    /// quotes, so a TOML array or string is one value (`rlvr.ks=[2,3],[2,3,7]`); each is read
    /// like a `--set` value (TOML, or a bare string).
    pub fn parse(item: &str) -> Result<Self> {
        let Some((key, values)) = item.split_once('=') else {
            bail!("--grid {item}: expected KEY=V1,V2, e.g. dpo.loss.loss_type=sigmoid,orpo");
        };
        let key = key.trim();
        if key.is_empty() || key.split('.').any(str::is_empty) {
            bail!("--grid {item}: `{key}` is not a setting's key (e.g. dpo.loss.beta)");
        }
        let values: Vec<String> = split_values(values)
            .into_iter()
            .map(|v| v.trim().to_string())
            .collect();
        if values.iter().any(String::is_empty) {
            bail!("--grid {item}: an empty value (values are separated by single commas)");
        }
        let mut seen = values.clone();
        seen.sort();
        seen.dedup();
        if seen.len() != values.len() {
            bail!("--grid {item}: a value is listed twice");
        }
        Ok(Self {
            key: key.to_string(),
            values,
        })
    }
}

/// `a,[b,c],"d,e"` → `a`, `[b,c]`, `"d,e"`: commas split only outside brackets and quotes.
fn split_values(text: &str) -> Vec<&str> {
    let (mut out, mut start, mut depth, mut quote) = (Vec::new(), 0, 0i32, None);
    for (i, c) in text.char_indices() {
        match (quote, c) {
            (Some(q), c) if c == q => quote = None,
            (Some(_), _) => {}
            (None, '"' | '\'') => quote = Some(c),
            (None, '[' | '{') => depth += 1,
            (None, ']' | '}') => depth -= 1,
            (None, ',') if depth == 0 => {
                out.push(&text[start..i]);
                start = i + 1;
            }
            _ => {}
        }
    }
    out.push(&text[start..]);
    out
}

/// The axes of a sweep, checked against each other and against `--set`.
pub fn parse_axes(items: &[String], overrides: &[String]) -> Result<Vec<Axis>> {
    let axes = items
        .iter()
        .map(|i| Axis::parse(i))
        .collect::<Result<Vec<_>>>()?;
    for (i, axis) in axes.iter().enumerate() {
        if axes[..i].iter().any(|a| a.key == axis.key) {
            bail!("--grid {}: the key is given twice", axis.key);
        }
        let set_too = overrides
            .iter()
            .any(|o| o.split_once('=').is_some_and(|(k, _)| k.trim() == axis.key));
        if set_too {
            bail!(
                "--grid {}: the key is also given by --set; the grid sets it in every cell",
                axis.key
            );
        }
    }
    Ok(axes)
}

/// One combination of the axes' values.
#[derive(Debug, Clone, PartialEq)]
pub struct Cell {
    /// `(key, value)` per axis, in the axes' order.
    pub settings: Vec<(String, String)>,
}

impl Cell {
    /// Its folder's name: `key=value` per axis joined by commas, as Hydra's
    /// `override_dirname`. `/` and `%` in a value are written `%2F` and `%25`, so a path
    /// value stays one folder.
    pub fn name(&self) -> String {
        self.settings
            .iter()
            .map(|(k, v)| format!("{k}={}", v.replace('%', "%25").replace('/', "%2F")))
            .collect::<Vec<_>>()
            .join(",")
    }

    /// The cell's settings as `--set` items.
    pub fn overrides(&self) -> Vec<String> {
        self.settings
            .iter()
            .map(|(k, v)| format!("{k}={v}"))
            .collect()
    }
}

/// Every cell, the first axis varying slowest (the order of the report's columns).
pub fn cells(axes: &[Axis]) -> Vec<Cell> {
    let mut cells = vec![Cell { settings: vec![] }];
    for axis in axes {
        cells = cells
            .into_iter()
            .flat_map(|cell| {
                axis.values.iter().map(move |v| {
                    let mut settings = cell.settings.clone();
                    settings.push((axis.key.clone(), v.clone()));
                    Cell { settings }
                })
            })
            .collect();
    }
    cells
}

#[cfg(test)]
mod tests {
    use super::*;

    fn axes(items: &[&str]) -> Result<Vec<Axis>> {
        let items: Vec<String> = items.iter().map(|s| s.to_string()).collect();
        parse_axes(&items, &["pretrain.steps=10".to_string()])
    }

    #[test]
    fn two_axes_cross_into_named_cells_first_axis_slowest() {
        let axes = axes(&["dpo.loss.loss_type=sigmoid,orpo", "rlvr.beta=0.0, 0.1"]).unwrap();
        let names: Vec<String> = cells(&axes).iter().map(Cell::name).collect();
        assert_eq!(
            names,
            [
                "dpo.loss.loss_type=sigmoid,rlvr.beta=0.0",
                "dpo.loss.loss_type=sigmoid,rlvr.beta=0.1",
                "dpo.loss.loss_type=orpo,rlvr.beta=0.0",
                "dpo.loss.loss_type=orpo,rlvr.beta=0.1",
            ]
        );
        assert_eq!(
            cells(&axes)[1].overrides(),
            ["dpo.loss.loss_type=sigmoid", "rlvr.beta=0.1"]
        );
        assert_eq!(cells(&[]), [Cell { settings: vec![] }]);
    }

    #[test]
    fn arrays_and_quoted_strings_are_single_values() {
        let axes = axes(&["rlvr.ks=[2,3],[2, 3, 7]", r#"x.y="a,b",c"#]).unwrap();
        assert_eq!(axes[0].values, ["[2,3]", "[2, 3, 7]"]);
        assert_eq!(axes[1].values, [r#""a,b""#, "c"]);
    }

    #[test]
    fn a_path_value_stays_one_folder() {
        let axes = axes(&["sft.words=data/a%b.txt"]).unwrap();
        assert_eq!(cells(&axes)[0].name(), "sft.words=data%2Fa%25b.txt");
        assert_eq!(cells(&axes)[0].overrides(), ["sft.words=data/a%b.txt"]);
    }

    #[test]
    fn malformed_axes_are_refused_in_one_line_naming_the_item() {
        for (items, needle) in [
            (vec!["dpo.loss.loss_type"], "expected KEY=V1,V2"),
            (vec!["=a,b"], "is not a setting's key"),
            (vec!["dpo..beta=1"], "is not a setting's key"),
            (vec!["dpo.loss.beta=0.1,,0.2"], "an empty value"),
            (vec!["dpo.loss.beta=0.1,0.1"], "listed twice"),
            (vec!["rlvr.beta=0,1", "rlvr.beta=2"], "given twice"),
            (vec!["pretrain.steps=1,2"], "also given by --set"),
        ] {
            let err = format!("{:#}", axes(&items).unwrap_err());
            assert!(err.contains(needle), "{items:?}: {err}");
            assert_eq!(err.lines().count(), 1, "{err}");
        }
    }
}
