//! Pipelines and where a case stands in one: user-defined phases in the groups potential, in
//! progress and closed (won or lost), each with a default probability; the probability of a case
//! (its phase's, unless overridden); and which moves a case may make.

use std::collections::HashSet;

use serde::{Deserialize, Serialize};

pub use super::PhaseGroup as Group;

/// A phase as stored (in the pipeline's `phases`, in order).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Phase {
    pub code: String,
    #[serde(default)]
    pub display_name: String,
    pub group: Group,
    /// 0 to 100; won phases are 100 and lost ones 0, whatever is given.
    pub probability: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PipelineError {
    /// Two phases with one code (case aside).
    DuplicateCode(usize),
    /// A probability over 100.
    Probability(usize),
    /// Phases out of group order: potential, then in progress, then the closed ones.
    Order(usize),
    /// No phase a case can start in, or no won or no lost phase to close it in.
    Missing(Group),
}

/// Checks `phases` as one pipeline's, in order; won and lost phases get their fixed probability.
pub fn pipeline(mut phases: Vec<Phase>) -> Result<Vec<Phase>, PipelineError> {
    let rank = |g: Group| match g {
        Group::Potential => 0,
        Group::InProgress => 1,
        Group::Won | Group::Lost => 2,
    };
    let mut codes = HashSet::new();
    for (i, phase) in phases.iter_mut().enumerate() {
        if !codes.insert(phase.code.to_lowercase()) {
            return Err(PipelineError::DuplicateCode(i));
        }
        if phase.probability > 100 {
            return Err(PipelineError::Probability(i));
        }
        phase.probability = match phase.group {
            Group::Won => 100,
            Group::Lost => 0,
            _ => phase.probability,
        };
    }
    if let Some(i) = phases
        .windows(2)
        .position(|w| rank(w[0].group) > rank(w[1].group))
    {
        return Err(PipelineError::Order(i + 1));
    }
    if !phases.iter().any(|p| !p.group.is_closed()) {
        return Err(PipelineError::Missing(Group::Potential));
    }
    for group in [Group::Won, Group::Lost] {
        if !phases.iter().any(|p| p.group == group) {
            return Err(PipelineError::Missing(group));
        }
    }
    Ok(phases)
}

/// A case's probability: its own when set, else its phase's.
pub fn probability(phase: &Phase, overridden: Option<u8>) -> u8 {
    match phase.group {
        Group::Won => 100,
        Group::Lost => 0,
        _ => overridden.unwrap_or(phase.probability).min(100),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MoveError {
    /// A closed case moves only when it is reopened.
    Closed,
    /// Into a closed phase a case goes by closing it (won, or lost with a reason).
    ByClosing,
    /// Already there.
    Same,
}

/// Whether a case in `from` may be moved to `to` by MoveCase (any open phase, forwards or
/// back), `reopen` taking a closed one back to an open phase.
pub fn may_move(from: &Phase, to: &Phase, reopen: bool) -> Result<(), MoveError> {
    if from.code == to.code {
        return Err(MoveError::Same);
    }
    if to.group.is_closed() {
        return Err(MoveError::ByClosing);
    }
    if from.group.is_closed() && !reopen {
        return Err(MoveError::Closed);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn phase(code: &str, group: Group, probability: u8) -> Phase {
        Phase {
            code: code.into(),
            display_name: code.into(),
            group,
            probability,
        }
    }

    fn sales() -> Vec<Phase> {
        vec![
            phase("lead", Group::Potential, 10),
            phase("qualified", Group::Potential, 25),
            phase("proposal", Group::InProgress, 60),
            phase("won", Group::Won, 30),
            phase("lost", Group::Lost, 30),
        ]
    }

    #[test]
    fn a_pipeline_runs_from_potential_through_progress_to_closed() {
        let phases = pipeline(sales()).unwrap();
        assert_eq!(phases[3].probability, 100, "won is certain");
        assert_eq!(phases[4].probability, 0, "lost is nothing");

        let mut twice = sales();
        twice[1].code = "LEAD".into();
        assert_eq!(pipeline(twice), Err(PipelineError::DuplicateCode(1)));
        let mut backwards = sales();
        backwards.swap(1, 2);
        assert_eq!(pipeline(backwards), Err(PipelineError::Order(2)));
        let mut unsure = sales();
        unsure[0].probability = 101;
        assert_eq!(pipeline(unsure), Err(PipelineError::Probability(0)));
        let never_lost: Vec<Phase> = sales().into_iter().take(4).collect();
        assert_eq!(
            pipeline(never_lost),
            Err(PipelineError::Missing(Group::Lost))
        );
        let only_closed = vec![phase("won", Group::Won, 0), phase("lost", Group::Lost, 0)];
        assert_eq!(
            pipeline(only_closed),
            Err(PipelineError::Missing(Group::Potential))
        );
    }

    #[test]
    fn a_case_is_as_likely_as_its_phase_unless_told_otherwise() {
        let phases = pipeline(sales()).unwrap();
        assert_eq!(probability(&phases[2], None), 60);
        assert_eq!(probability(&phases[2], Some(80)), 80);
        assert_eq!(probability(&phases[3], Some(80)), 100, "a won case is won");
        assert_eq!(probability(&phases[4], Some(80)), 0);
    }

    #[test]
    fn cases_move_between_open_phases_and_close_by_closing() {
        let phases = pipeline(sales()).unwrap();
        assert_eq!(may_move(&phases[0], &phases[2], false), Ok(()));
        assert_eq!(
            may_move(&phases[2], &phases[0], false),
            Ok(()),
            "back is allowed"
        );
        assert_eq!(
            may_move(&phases[2], &phases[3], false),
            Err(MoveError::ByClosing)
        );
        assert_eq!(
            may_move(&phases[4], &phases[1], false),
            Err(MoveError::Closed)
        );
        assert_eq!(may_move(&phases[4], &phases[1], true), Ok(()));
        assert_eq!(
            may_move(&phases[1], &phases[1], false),
            Err(MoveError::Same)
        );
    }
}
