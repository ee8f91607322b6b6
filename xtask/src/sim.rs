//! `cargo xtask sim …`: the lessons' interactive widgets as terminal commands.

use anyhow::Result;
use clap::{Args, Subcommand};

#[derive(Subcommand)]
pub enum Sim {
    /// Lesson 05's margin simulator: one pair, one gradient step per row, the margin curve.
    Dpo(DpoSimArgs),
    /// Lesson 06's group simulator: one prompt's rewards and advantages per step, dead groups.
    Grpo(GrpoSimArgs),
}

#[derive(Args)]
pub struct GrpoSimArgs {
    /// Rollouts per group.
    #[arg(long, default_value_t = 4)]
    k: usize,
    /// The policy's starting success probability on the prompt.
    #[arg(long, default_value_t = 0.2)]
    p0: f64,
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Step size on the logit of p.
    #[arg(long, default_value_t = 1.0)]
    lr: f64,
    #[arg(long, default_value_t = 0)]
    seed: u64,
}

#[derive(Args)]
pub struct DpoSimArgs {
    /// β: how strongly a log-ratio becomes reward.
    #[arg(long, default_value_t = 0.1)]
    beta: f64,
    #[arg(long, default_value_t = 50)]
    steps: usize,
    /// Step size η on the log-ratios.
    #[arg(long, default_value_t = 10.0)]
    lr: f64,
}

pub fn run(sim: &Sim) -> Result<()> {
    match sim {
        Sim::Dpo(args) => dpo(args),
        Sim::Grpo(args) => grpo(args),
    }
}

fn grpo(args: &GrpoSimArgs) -> Result<()> {
    anyhow::ensure!(args.k >= 2, "--k must be >= 2, got {}", args.k);
    anyhow::ensure!(
        args.p0 > 0.0 && args.p0 < 1.0,
        "--p0 must be in (0, 1), got {}",
        args.p0
    );
    let run = rlvr::simulator::simulate(args.k, args.p0, args.lr, args.steps, args.seed);
    println!(
        "GRPO group simulator: K = {}, p0 = {}, η = {}",
        args.k, args.p0, args.lr
    );
    println!(
        "{:>5}  {:>6}  {:<w$}  {:<a$}  {:>9}",
        "step",
        "p",
        "rewards",
        "advantages",
        "dead rate",
        w = 2 * args.k + 2,
        a = 7 * args.k + 2
    );
    for s in &run {
        let rewards: Vec<String> = s.rewards.iter().map(|r| format!("{r:.0}")).collect();
        let advantages = match &s.advantages {
            Some(a) => a
                .iter()
                .map(|x| format!("{x:+.2}"))
                .collect::<Vec<_>>()
                .join(" "),
            None => "dead: all rewards equal, skipped".to_string(),
        };
        println!(
            "{:>5}  {:>6.3}  [{:<w$}]  {:<a$}  {:>9.2}",
            s.step,
            s.p,
            rewards.join(" "),
            advantages,
            s.dead_rate,
            w = 2 * args.k - 1,
            a = 7 * args.k + 2
        );
    }
    let p: Vec<f64> = run.iter().map(|s| s.p).collect();
    println!("\nsuccess probability p over steps:");
    print!("{}", plot(&p, 60, 10));
    Ok(())
}

fn dpo(args: &DpoSimArgs) -> Result<()> {
    anyhow::ensure!(args.beta > 0.0, "--beta must be > 0, got {}", args.beta);
    anyhow::ensure!(args.lr > 0.0, "--lr must be > 0, got {}", args.lr);
    let run = dpo::simulator::simulate(args.beta, args.lr, args.steps);
    println!("DPO margin simulator: β = {}, η = {}", args.beta, args.lr);
    println!(
        "{:>5}  {:>9}  {:>9}  {:>8}  {:>7}",
        "step", "Δw", "Δl", "margin", "loss"
    );
    let every = (args.steps / 10).max(1);
    for s in run
        .iter()
        .filter(|s| s.step % every == 0 || s.step == args.steps)
    {
        println!(
            "{:>5}  {:>+9.3}  {:>+9.3}  {:>8.4}  {:>7.4}",
            s.step, s.chosen_logratio, s.rejected_logratio, s.margin, s.loss
        );
    }
    let margins: Vec<f64> = run.iter().map(|s| s.margin).collect();
    println!("\nmargin r̂w − r̂l over steps:");
    print!("{}", plot(&margins, 60, 12));
    Ok(())
}

/// A line chart in text: `width` columns (values resampled), `height` rows, y axis labelled.
pub fn plot(values: &[f64], width: usize, height: usize) -> String {
    if values.is_empty() {
        return String::new();
    }
    let (lo, hi) = values
        .iter()
        .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &v| {
            (lo.min(v), hi.max(v))
        });
    let span = if hi > lo { hi - lo } else { 1.0 };
    let columns = width.min(values.len()).max(1);
    let mut grid = vec![vec![' '; columns]; height];
    for (c, cell) in (0..columns).map(|c| (c, c * (values.len() - 1) / (columns - 1).max(1))) {
        let level = ((values[cell] - lo) / span * (height - 1) as f64).round() as usize;
        grid[height - 1 - level][c] = '•';
    }
    let mut out = String::new();
    for (r, row) in grid.iter().enumerate() {
        let label = match r {
            0 => format!("{hi:>8.3} ┤"),
            r if r == height - 1 => format!("{lo:>8.3} ┤"),
            _ => format!("{:>8} │", ""),
        };
        out.push_str(&label);
        out.extend(row.iter());
        out.push('\n');
    }
    out.push_str(&format!(
        "{:>8} └{}\n{:>10}0{:>w$}\n",
        "",
        "─".repeat(columns),
        "",
        values.len() - 1,
        w = columns - 1
    ));
    out
}
