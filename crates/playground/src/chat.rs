//! `cargo xtask chat`: a terminal REPL over one checkpoint. Each line is a prompt; the
//! continuation is printed token by token as it is drawn, and a task problem (`3+4+5=`,
//! `<abcd>`) gets the strict verifier's verdict. Line editing and history come from
//! rustyline; piped input (not a terminal) is read line by line the same way.

use std::io::Write;
use std::path::PathBuf;

use anyhow::{Context, Result};
use clap::Args;
use data::tasks::recognise;
use data::tokenizer::END;
use model::generate::{generate_streaming, SamplingOptions, Streams};
use model::DeviceChoice;
use rustyline::error::ReadlineError;
use rustyline::DefaultEditor;

use crate::inference::LoadedStage;

#[derive(Args)]
pub struct ChatArgs {
    /// A stage folder, e.g. runs/default/rlvr.
    #[arg(long)]
    from: PathBuf,
    /// 0 = greedy; change it in the session with `/temperature X`.
    #[arg(long, default_value_t = 0.0)]
    temperature: f32,
    /// Sample from the k most likely tokens only (0 = all).
    #[arg(long, default_value_t = 0)]
    top_k: usize,
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Where the line history is kept between sessions.
    #[arg(long, default_value = "runs/.chat_history")]
    history: PathBuf,
    #[arg(long, default_value = "flex")]
    device: DeviceChoice,
}

const HELP: &str = "type a prompt (e.g. 3+4+5= or <abcd>); /temperature X, /help, /quit";

pub fn run(args: &ChatArgs) -> Result<()> {
    let device = args.device.device().map_err(anyhow::Error::msg)?;
    let stage = LoadedStage::load(&args.from, &device)?;
    let end = stage.tokenizer.symbol_id(END)?;
    let mut editor = DefaultEditor::new().context("starting the line editor")?;
    // A first session has no history yet.
    let _ = editor.load_history(&args.history);
    let mut temperature = args.temperature;
    // Each reply draws from its own streams, from (seed, turn).
    let mut turn = 0u64;
    println!(
        "{} ({} positions). {HELP}",
        args.from.display(),
        stage.config.block_size
    );
    loop {
        let line = match editor.readline("> ") {
            Ok(line) => line,
            Err(ReadlineError::Interrupted | ReadlineError::Eof) => break,
            Err(e) => return Err(e).context("reading a line"),
        };
        let prompt = line.trim_end_matches(['\r', '\n']);
        if prompt.trim().is_empty() {
            continue;
        }
        let _ = editor.add_history_entry(prompt);
        match prompt.trim() {
            "/quit" | "/exit" => break,
            "/help" => {
                println!("{HELP}");
                continue;
            }
            command if command.starts_with("/temperature") => {
                match command["/temperature".len()..].trim().parse::<f32>() {
                    Ok(t) if t.is_finite() && t >= 0.0 => {
                        temperature = t;
                        println!("temperature {t}");
                    }
                    _ => println!("error: /temperature takes a number ≥ 0 (0 = greedy)"),
                }
                continue;
            }
            command if command.starts_with('/') => {
                println!("error: unknown command {command:?}; {HELP}");
                continue;
            }
            _ => {}
        }
        let ids = match stage.encode_prompt(prompt) {
            Ok(ids) => ids,
            Err(e) => {
                println!("error: {e:#}");
                continue;
            }
        };
        let options = SamplingOptions {
            max_new_tokens: stage.config.block_size,
            temperature,
            top_k: args.top_k,
            stop_token: Some(end),
        };
        let mut stdout = std::io::stdout();
        print!("{prompt}");
        turn += 1;
        let streams = Streams::for_step(args.seed, turn);
        let tokens = generate_streaming(&stage.model, &ids, options, streams, &device, &mut |t| {
            print!("{}", stage.tokenizer.decode(&[t]));
            let _ = stdout.flush();
        });
        println!();
        let completion = stage.tokenizer.decode(&tokens);
        if let Some(v) = recognise::verdict(prompt, &completion) {
            let k = v.k.map_or(String::new(), |k| format!(" K={k}"));
            println!("[{}{k}: {} ({})]", v.task, v.verdict, v.format);
        }
    }
    if let Some(dir) = args.history.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    if let Err(e) = editor.save_history(&args.history) {
        eprintln!(
            "warning: history not saved to {}: {e}",
            args.history.display()
        );
    }
    Ok(())
}
