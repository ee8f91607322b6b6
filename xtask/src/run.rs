//! A run folder, `runs/NAME/`: the chain's tokenizer, then one folder per stage. A `Run`
//! holds the folder's lock (`crate::lock`) for as long as it lives.

use std::path::{Path, PathBuf};

use anyhow::{bail, Context, Result};
use chain::layout::{RUN_INFO, SWEEP_INFO};
use chain::Stage;
use clap::Args;
use data::corpus::read_text;
use data::tasks::digit_sum::{train_problems, Mode};
use data::tasks::reverse;
use data::tokenizer::TASK_ALPHABET;
use data::TextTokenizer;
use model::DeviceChoice;
use trainer::outputs::config_hash;
use trainer::{files, Manifest, StageContext};

use crate::config::{PipelineConfig, QUICK};
use crate::lock::RunLock;

/// The tokenizer settings the run's `tokenizer.json` was trained with.
const TOKENIZER_SETTINGS: &str = "tokenizer.config.json";

/// What every command that trains takes: the config, the run folder, the device.
#[derive(Args, Clone)]
pub struct RunArgs {
    /// Pipeline settings.
    #[arg(long, default_value = "pipeline.toml")]
    pub config: PathBuf,
    /// Run name: outputs go to RUNS_DIR/NAME/STAGE [default: "default", or "quick" with --quick].
    #[arg(long)]
    run: Option<String>,
    #[arg(long, default_value = "runs")]
    runs_dir: PathBuf,
    /// Backend, chosen once for the whole run: flex (CPU) or wgpu (GPU, needs --features wgpu).
    #[arg(long, default_value = "flex")]
    device: DeviceChoice,
    /// No progress bar.
    #[arg(long)]
    quiet: bool,
    /// The small preset (pipeline.quick.toml): every stage with cut budgets, a few minutes
    /// in all on 2 cores.
    #[arg(long)]
    quick: bool,
    /// Override one setting of the config, e.g. `--set dpo.loss.rpo_alpha=0` (repeatable;
    /// applied after --quick).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub overrides: Vec<String>,
}

impl RunArgs {
    /// Loads the config, then creates and locks the run folder: nothing is written for a bad
    /// config, and nothing at all while another process holds the run.
    /// With `seed` > 0 every stage's seed is offset by it (`PipelineConfig::seed_overrides`),
    /// recorded in `run.json` as the `--set` items it amounts to.
    pub fn open(&self, seed: u64) -> Result<Run> {
        self.open_in(self.run_dir(), seed)
    }

    /// The run folder: RUNS_DIR/NAME.
    pub fn run_dir(&self) -> PathBuf {
        self.runs_dir.join(self.run_name())
    }

    /// The settings these args ask for (seed 0), checked; nothing is written.
    pub fn load_config(&self) -> Result<PipelineConfig> {
        PipelineConfig::load(&self.config, self.quick.then_some(&QUICK), &self.overrides)
    }

    /// `--run`'s value: the run's (or sweep's) name under the runs folder.
    pub fn run_name(&self) -> String {
        let preset = self.quick.then_some(&QUICK);
        let name = preset.map_or("default", |p| p.name);
        self.run.clone().unwrap_or_else(|| name.to_string())
    }

    /// The `xtask` arguments of `subcommand` on `RUNS_DIR/RUN` with these settings, for a job
    /// on a cluster, without a progress bar. Paths stay as given, so the job must start in
    /// this folder: a stage's settings hash holds its data paths as the config resolved them,
    /// and an absolute path would make every finished stage look out of date.
    pub fn command(&self, subcommand: &str, run: &str) -> Vec<String> {
        let mut command = vec![
            subcommand.to_string(),
            "--config".into(),
            self.config.display().to_string(),
            "--runs-dir".into(),
            self.runs_dir.display().to_string(),
            "--run".into(),
            run.into(),
            "--device".into(),
            self.device.to_string(),
            "--quiet".into(),
        ];
        if self.quick {
            command.push("--quick".into());
        }
        for item in &self.overrides {
            command.push(format!("--set={item}"));
        }
        command
    }

    pub fn open_in(&self, dir: PathBuf, seed: u64) -> Result<Run> {
        let preset = self.quick.then_some(&QUICK);
        let mut overrides = self.overrides.clone();
        if seed > 0 {
            overrides.extend(self.load_config()?.seed_overrides(seed));
        }
        let config = PipelineConfig::load(&self.config, preset, &overrides)?;
        let name = preset.map_or("default", |p| p.name);
        let run = Run::open(dir, config, self.device, self.quiet)?;
        run.record_preset(name, &self.config, &overrides)?;
        Ok(run)
    }
}

pub struct Run {
    pub dir: PathBuf,
    pub config: PipelineConfig,
    pub device: DeviceChoice,
    pub quiet: bool,
    _lock: RunLock,
}

impl Run {
    /// Creates the run folder if needed and locks it; refuses when another process holds it.
    pub fn open(
        dir: PathBuf,
        config: PipelineConfig,
        device: DeviceChoice,
        quiet: bool,
    ) -> Result<Self> {
        std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let lock = RunLock::acquire(&dir)?;
        Ok(Self {
            dir,
            config,
            device,
            quiet,
            _lock: lock,
        })
    }

    pub fn stage_dir(&self, stage: Stage) -> PathBuf {
        stage.dir(&self.dir)
    }

    /// Writes `run.json` (which preset and config made this run), refusing to mix presets in
    /// one run folder: the report must be able to say which one produced it.
    pub fn record_preset(&self, preset: &str, config: &Path, overrides: &[String]) -> Result<()> {
        if self.dir.join(SWEEP_INFO).exists() {
            bail!(
                "{} is a sweep's folder (sweep.json): run into one of its seed-S folders or \
                 use another --run name",
                self.dir.display()
            );
        }
        let path = self.dir.join(RUN_INFO);
        if let Ok(text) = std::fs::read_to_string(&path) {
            let saved: serde_json::Value = serde_json::from_str(&text)
                .with_context(|| format!("{} is not valid JSON", path.display()))?;
            if saved["preset"] != preset {
                bail!(
                    "run {} was made with the {} preset, this command asks for {preset}: \
                     use another --run name",
                    self.dir.display(),
                    saved["preset"]
                );
            }
        }
        let info = serde_json::json!({
            "preset": preset,
            "config": config.display().to_string(),
            "overrides": overrides,
        });
        data::atomic::write(&path, serde_json::to_string_pretty(&info)?)
    }

    /// The run's one vocabulary: loaded if this run already has it, else trained on the union
    /// of every stage's text and saved. A run never silently switches tokenizers.
    pub fn tokenizer(&self) -> Result<TextTokenizer> {
        let path = self.dir.join(files::TOKENIZER);
        let settings_path = self.dir.join(TOKENIZER_SETTINGS);
        let settings = serde_json::to_string(&self.config.tokenizer)?;
        if path.exists() {
            let saved = std::fs::read_to_string(&settings_path).unwrap_or_default();
            if saved != settings {
                bail!(
                    "run {} was tokenized with {saved}, the config asks for {settings}: \
                     use a new --run name (one vocabulary per chain)",
                    self.dir.display()
                );
            }
            return TextTokenizer::load(&path);
        }
        let texts = self.tokenizer_texts()?;
        let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
        let tokenizer = TextTokenizer::train(&self.config.tokenizer, &refs)?;
        tokenizer.save(&path)?;
        data::atomic::write(&settings_path, settings)?;
        Ok(tokenizer)
    }

    /// Every stage's text: the pretraining corpus, every reverse-word example, a sample of
    /// digit sums written both ways, and the task alphabet.
    fn tokenizer_texts(&self) -> Result<Vec<String>> {
        let mut texts = vec![
            read_text(&self.config.pretrain.corpus)?,
            TASK_ALPHABET.to_string(),
        ];
        for word in reverse::read_words(&self.config.sft.words)? {
            let e = reverse::example(&word);
            texts.push(e.prompt + &e.completion);
        }
        for problem in train_problems(&self.config.cot_sft.ks, 2000, 0) {
            texts.push(problem.prompt() + &problem.completion(Mode::Cot));
            texts.push(problem.prompt() + &problem.completion(Mode::Direct));
        }
        Ok(texts)
    }

    pub fn context(
        &self,
        stage: Stage,
        tokenizer: TextTokenizer,
        parent_dir: Option<PathBuf>,
    ) -> Result<StageContext> {
        let mut model = self.config.model.clone();
        model.vocab_size = tokenizer.vocab_size();
        Ok(StageContext {
            stage: stage.name().to_string(),
            out_dir: self.stage_dir(stage),
            device: self.device.device().map_err(anyhow::Error::msg)?,
            device_name: self.device.to_string(),
            tokenizer,
            model,
            parent_dir,
            quiet: self.quiet,
            checkpoint_every: self.config.checkpoint_every,
            interrupt_after: interrupt_after()?,
        })
    }
}

impl Run {
    /// SHA-256 of one stage's settings, the same value the stage records in its manifest.
    pub fn stage_config_hash(&self, stage: Stage) -> String {
        let c = &self.config;
        match stage {
            Stage::Pretrain => config_hash(&c.pretrain),
            Stage::Sft => config_hash(&c.sft),
            Stage::CotSft => config_hash(&c.cot_sft),
            Stage::Dpo => config_hash(&c.dpo),
            Stage::Rlvr => config_hash(&c.rlvr),
        }
    }

    /// A stage is up to date when its folder holds a finished stage (a manifest) made with
    /// the same settings, tokenizer and model shape, from the parent checkpoint that is there
    /// now. Rerunning the pipeline skips such stages. A manifest that is there but malformed
    /// is an error naming it, not a reason to retrain over it.
    pub fn is_up_to_date(&self, stage: Stage, tokenizer: &TextTokenizer) -> Result<bool> {
        let Some(manifest) = self.manifest(stage)? else {
            return Ok(false);
        };
        Ok(self.would_make(stage, &manifest, tokenizer)?
            && self.stage_dir(stage).join(files::CHECKPOINT).is_file())
    }

    /// Whether `manifest` describes the stage this run would train now: the same settings,
    /// tokenizer and model shape, from the parent checkpoint this run has now.
    pub fn would_make(
        &self,
        stage: Stage,
        manifest: &Manifest,
        tokenizer: &TextTokenizer,
    ) -> Result<bool> {
        let mut model = self.config.model.clone();
        model.vocab_size = tokenizer.vocab_size();
        let parent_ok = match stage.parent() {
            None => manifest.parent_checkpoint_hash.is_none(),
            Some(p) => self.manifest(p)?.is_some_and(|pm| {
                manifest.parent_checkpoint_hash.as_ref() == Some(&pm.checkpoint_hash)
            }),
        };
        Ok(parent_ok
            && manifest.config_hash == self.stage_config_hash(stage)
            && manifest.tokenizer_hash == tokenizer.hash()
            && manifest.model == model)
    }

    /// Every stage finished with these settings; a run without its tokenizer yet has none.
    pub fn is_complete(&self) -> Result<bool> {
        if !self.dir.join(files::TOKENIZER).is_file() {
            return Ok(false);
        }
        let tokenizer = self.tokenizer()?;
        for stage in Stage::ALL {
            if !self.is_up_to_date(stage, &tokenizer)? {
                return Ok(false);
            }
        }
        Ok(true)
    }

    /// Measures a finished stage's checkpoint on every skill of the chain (`skills.json`),
    /// unless it already was.
    pub fn ensure_skills(&self, stage: Stage) -> Result<()> {
        let device = self.device.device().map_err(anyhow::Error::msg)?;
        let suite = self.config.skill_suite();
        chain::skills::ensure(stage, &self.stage_dir(stage), &suite, &device)
    }

    /// The stage's manifest, `None` when it has not finished here.
    pub fn manifest(&self, stage: Stage) -> Result<Option<Manifest>> {
        let path = self.stage_dir(stage).join(files::MANIFEST);
        if !path.exists() {
            return Ok(None);
        }
        Manifest::load(&path).map(Some)
    }
}

/// The variable that tests of resuming set: each loop stops with an error right after its
/// first snapshot at or after this step, as a kill would, but at a known point.
pub const INTERRUPT_AFTER_VAR: &str = "XTASK_INTERRUPT_AFTER_STEP";

fn interrupt_after() -> Result<Option<usize>> {
    match std::env::var(INTERRUPT_AFTER_VAR) {
        Ok(value) => value
            .parse()
            .map(Some)
            .map_err(|_| anyhow::anyhow!("{INTERRUPT_AFTER_VAR}={value}: expected a step number")),
        Err(_) => Ok(None),
    }
}
