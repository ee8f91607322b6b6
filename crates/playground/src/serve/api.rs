//! The routes. Every failure is a 4xx (or, for a bug, a 500) whose JSON body is
//! `{"error": "one line"}`; the server goes on serving.
//!
//! - `GET /` the page; `GET /report.html` and `GET /report/NAME.svg` the run's report card.
//! - `GET /api/stages`: the chain's stages, which have a checkpoint, and each one's parent.
//! - `GET /api/problems`: held-out task prompts for the page's picker.
//! - `POST /api/complete` `{"prompt", "stages"?, "temperature"?, "top_k"?, "max_new_tokens"?,
//!   "seed"?}`: every (or each named) stage's completion, keyed by stage name.
//! - `POST /api/preference` `{"prompt", "chosen", "rejected"}`: log π(chosen) − log π(rejected)
//!   under every stage and under its parent, the reference it was trained against.

use std::sync::Arc;

use axum::extract::rejection::JsonRejection;
use axum::extract::{Path, State};
use axum::http::{header, StatusCode};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::Deserialize;
use serde_json::{json, Map, Value};
use trainer::files;

use super::state::Playground;
use crate::inference::{Decoding, LoadedStage};
use chain::Stage;

/// Longest prompt accepted, in characters, before it is even tokenized.
const MAX_PROMPT_CHARS: usize = 1000;
const MAX_TEMPERATURE: f32 = 10.0;

type Shared = Arc<Playground>;

pub fn router(playground: Shared) -> Router {
    Router::new()
        .route("/", get(page))
        .route("/report.html", get(report_card))
        .route("/report/{file}", get(report_plot))
        .route("/api/stages", get(stages))
        .route("/api/problems", get(problems))
        .route("/api/complete", post(complete))
        .route("/api/preference", post(preference))
        .fallback(|| async { ApiError::not_found("no such page or API route".into()) })
        .with_state(playground)
}

/// A one-line error with its status.
struct ApiError(StatusCode, String);

impl ApiError {
    fn bad_request(message: String) -> Self {
        Self(StatusCode::BAD_REQUEST, message)
    }
    fn not_found(message: String) -> Self {
        Self(StatusCode::NOT_FOUND, message)
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let line = self.1.lines().collect::<Vec<_>>().join(" ");
        (self.0, Json(json!({ "error": line }))).into_response()
    }
}

impl From<JsonRejection> for ApiError {
    fn from(rejection: JsonRejection) -> Self {
        Self(rejection.status(), rejection.body_text())
    }
}

async fn page() -> Html<&'static str> {
    Html(include_str!("page.html"))
}

async fn report_card(State(pg): State<Shared>) -> Result<Html<String>, ApiError> {
    let path = pg.run_dir.join("report.html");
    std::fs::read_to_string(&path).map(Html).map_err(|_| {
        ApiError::not_found(format!(
            "{} does not exist yet (`cargo xtask report` writes it)",
            path.display()
        ))
    })
}

async fn report_plot(
    State(pg): State<Shared>,
    Path(file): Path<String>,
) -> Result<Response, ApiError> {
    let safe = file.ends_with(".svg")
        && !file.starts_with('.')
        && file
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if !safe {
        return Err(ApiError::not_found(format!("no plot named {file:?}")));
    }
    let svg = std::fs::read(pg.run_dir.join("report").join(&file))
        .map_err(|_| ApiError::not_found(format!("no plot named {file:?} in this run's report")))?;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
}

async fn stages(State(pg): State<Shared>) -> Json<Value> {
    let list: Vec<Value> = Stage::ALL
        .iter()
        .map(|&stage| {
            let loaded = pg.stage(stage);
            json!({
                "name": stage.name(),
                "available": loaded.is_some(),
                "parent": stage.parent().map(Stage::name),
                "block_size": loaded.map(|s| s.config.block_size),
                "manifest": loaded.and_then(read_manifest),
            })
        })
        .collect();
    Json(json!({ "run": pg.run_dir.display().to_string(), "stages": list }))
}

fn read_manifest(stage: &LoadedStage) -> Option<Value> {
    let text = std::fs::read_to_string(stage.dir.join(files::MANIFEST)).ok()?;
    serde_json::from_str(&text).ok()
}

async fn problems(State(pg): State<Shared>) -> Json<Value> {
    Json(pg.problems.clone())
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CompleteRequest {
    prompt: String,
    /// Stage names; all available stages when absent.
    stages: Option<Vec<String>>,
    #[serde(default)]
    temperature: f32,
    #[serde(default)]
    top_k: usize,
    max_new_tokens: Option<usize>,
    #[serde(default)]
    seed: u64,
}

async fn complete(
    State(pg): State<Shared>,
    body: Result<Json<CompleteRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(request) = body?;
    check_prompt(&request.prompt)?;
    if !request.temperature.is_finite() || !(0.0..=MAX_TEMPERATURE).contains(&request.temperature) {
        return Err(ApiError::bad_request(format!(
            "temperature must be in 0..={MAX_TEMPERATURE} (0 = greedy), got {}",
            request.temperature
        )));
    }
    let chosen = pg.select(request.stages.as_deref())?;
    let decoding = Decoding {
        temperature: request.temperature,
        top_k: request.top_k,
        max_new_tokens: request.max_new_tokens.unwrap_or(usize::MAX),
        seed: request.seed,
    };
    blocking(pg, move |pg| {
        let mut completions = Map::new();
        for stage in &chosen {
            let loaded = pg.stage(*stage).expect("selected stages are loaded");
            let answer = loaded
                .complete(&request.prompt, decoding, &pg.device)
                .map_err(|e| ApiError::bad_request(format!("{e:#}")))?;
            completions.insert(stage.name().into(), json!(answer));
        }
        let order: Vec<&str> = chosen.iter().map(|s| s.name()).collect();
        Ok(json!({ "prompt": request.prompt, "order": order, "completions": completions }))
    })
    .await
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct PreferenceRequest {
    prompt: String,
    chosen: String,
    rejected: String,
}

async fn preference(
    State(pg): State<Shared>,
    body: Result<Json<PreferenceRequest>, JsonRejection>,
) -> Result<Json<Value>, ApiError> {
    let Json(request) = body?;
    check_prompt(&request.prompt)?;
    for (field, text) in [("chosen", &request.chosen), ("rejected", &request.rejected)] {
        if text.is_empty() || text.chars().count() > MAX_PROMPT_CHARS {
            return Err(ApiError::bad_request(format!(
                "{field} must be 1..={MAX_PROMPT_CHARS} characters"
            )));
        }
    }
    blocking(pg, move |pg| {
        // log π(chosen), log π(rejected) under each stage, scored once: a stage's parent is
        // read from here as its reference.
        let mut scores = Vec::new();
        for (stage, loaded) in &pg.stages {
            let score = |text: &str| {
                loaded
                    .score(&request.prompt, text, &pg.device)
                    .map(|c| c.logprob)
                    .map_err(|e| ApiError::bad_request(format!("{e:#}")))
            };
            scores.push((*stage, score(&request.chosen)?, score(&request.rejected)?));
        }
        let mut margins = Map::new();
        for &(stage, chosen, rejected) in &scores {
            let parent = stage
                .parent()
                .and_then(|p| scores.iter().find(|(s, _, _)| *s == p));
            let reference = match parent {
                Some(&(parent, c, r)) => {
                    json!({ "stage": parent.name(), "logp_chosen": c, "logp_rejected": r, "margin": c - r })
                }
                None => Value::Null,
            };
            // DPO's implicit reward margin divided by β: how much further this stage prefers
            // `chosen` than its reference does.
            let implicit = reference["margin"]
                .as_f64()
                .map(|reference_margin| (chosen - rejected) - reference_margin);
            margins.insert(
                stage.name().into(),
                json!({
                    "logp_chosen": chosen,
                    "logp_rejected": rejected,
                    "margin": chosen - rejected,
                    "reference": reference,
                    "implicit_reward_margin_over_beta": implicit,
                }),
            );
        }
        Ok(json!({ "prompt": request.prompt, "stages": margins }))
    })
    .await
}

fn check_prompt(prompt: &str) -> Result<(), ApiError> {
    let chars = prompt.chars().count();
    if chars == 0 {
        return Err(ApiError::bad_request("the prompt is empty".into()));
    }
    if chars > MAX_PROMPT_CHARS {
        return Err(ApiError::bad_request(format!(
            "the prompt is {chars} characters; at most {MAX_PROMPT_CHARS} are accepted"
        )));
    }
    Ok(())
}

/// Runs model work on the blocking pool, so the async routes stay free. A panic there is a
/// 500 for this request only.
async fn blocking<F>(pg: Shared, work: F) -> Result<Json<Value>, ApiError>
where
    F: FnOnce(&Playground) -> Result<Value, ApiError> + Send + 'static,
{
    match tokio::task::spawn_blocking(move || work(&pg)).await {
        Ok(result) => result.map(Json),
        Err(_) => Err(ApiError(
            StatusCode::INTERNAL_SERVER_ERROR,
            "the model failed on this request (a bug: please report it)".into(),
        )),
    }
}

impl Playground {
    fn stage(&self, stage: Stage) -> Option<&LoadedStage> {
        self.stages
            .iter()
            .find(|(s, _)| *s == stage)
            .map(|(_, loaded)| loaded)
    }

    /// The stages a request names (all loaded ones when it names none), in chain order.
    fn select(&self, names: Option<&[String]>) -> Result<Vec<Stage>, ApiError> {
        let Some(names) = names else {
            return Ok(self.stages.iter().map(|(s, _)| *s).collect());
        };
        if names.is_empty() {
            return Err(ApiError::bad_request("stages is empty".into()));
        }
        let mut chosen = Vec::new();
        for name in names {
            let stage = Stage::ALL
                .into_iter()
                .find(|s| s.name() == name)
                .ok_or_else(|| {
                    let known: Vec<&str> = Stage::ALL.iter().map(|s| s.name()).collect();
                    ApiError::bad_request(format!(
                        "unknown stage {name:?} (expected one of {})",
                        known.join(", ")
                    ))
                })?;
            if self.missing.contains(&stage) {
                return Err(ApiError::not_found(format!(
                    "this run has no {stage} checkpoint: {} is missing",
                    stage.dir(&self.run_dir).join(files::CHECKPOINT).display()
                )));
            }
            chosen.push(stage);
        }
        chosen.sort();
        chosen.dedup();
        Ok(chosen)
    }
}
