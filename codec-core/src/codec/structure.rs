//! Frame structures and unit kinds.

/// How frames are grouped and predicted.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum Structure {
    /// Every frame coded on its own.
    Intra,
    /// Thesis Fig. 3.2: groups of 2 frames; anchor t−1 is sent, t is predicted from the
    /// dequantized anchor with motion vectors only (open loop).
    Uni,
    /// Thesis Fig. 3.4: groups of 3 frames (t−1, t, t+1); anchor t is sent, t−1 and t+1 are
    /// predicted from it with motion vectors only. One frame of encoder delay.
    Bi,
    /// Each frame predicted from the previous decoded frame plus a quantized residual, with a
    /// key frame every `key_interval` frames.
    ClosedLoop,
    /// fmap's own mode: closed loop in the value domain with a uniform step, rate–distortion
    /// block decisions and context-adaptive range coding.
    #[default]
    Adaptive,
}

impl Structure {
    pub const ALL: [Structure; 5] = [
        Structure::Intra,
        Structure::Uni,
        Structure::Bi,
        Structure::ClosedLoop,
        Structure::Adaptive,
    ];

    /// Name as used by properties and command lines.
    pub fn name(self) -> &'static str {
        match self {
            Structure::Intra => "intra",
            Structure::Uni => "uni",
            Structure::Bi => "bi",
            Structure::ClosedLoop => "closed-loop",
            Structure::Adaptive => "adaptive",
        }
    }

    /// One-line description, as `gst-inspect-1.0 fmapenc` shows it.
    pub fn description(self) -> &'static str {
        match self {
            Structure::Intra => "Intra: every frame coded on its own",
            Structure::Uni => {
                "Uni: anchor t-1 coded, frame t predicted from it with motion vectors only \
                 (thesis, open loop)"
            }
            Structure::Bi => {
                "Bi: anchor t coded, t-1 and t+1 predicted from it with motion vectors only \
                 (thesis, open loop; one frame of delay)"
            }
            Structure::ClosedLoop => {
                "Closed-loop: each frame predicted from the previous decoded frame plus an N-bit \
                 residual"
            }
            Structure::Adaptive => {
                "Adaptive: closed loop with a uniform step, rate-distortion decisions and \
                 context-adaptive range coding"
            }
        }
    }

    /// Parses [`Structure::name`].
    pub fn from_name(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.name() == name)
    }

    /// Frames of reordering delay the encoder introduces.
    pub fn delay_frames(self) -> u32 {
        match self {
            Structure::Bi => 1,
            _ => 0,
        }
    }
}

impl std::fmt::Display for Structure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// What a coded unit holds. Stored in the unit header as [`UnitKind::id`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UnitKind {
    /// Quantized + entropy-coded frame of the intra structure.
    Intra,
    /// Quantized + entropy-coded anchor of a uni/bi group.
    Anchor,
    /// Motion vectors only, predicted from the group's anchor (uni/bi).
    Predicted,
    /// Key frame of the closed-loop structure.
    ClosedLoopKey,
    /// Motion vectors + quantized residual against the previous decoded frame.
    ClosedLoopPredicted,
    /// Adaptive mode: every value predicted as 0, context-coded residuals.
    AdaptiveKey,
    /// Adaptive mode: a shared motion field and context-coded residuals against the previous
    /// decoded frame.
    AdaptivePredicted,
}

impl UnitKind {
    pub const ALL: [UnitKind; 7] = [
        UnitKind::Intra,
        UnitKind::Anchor,
        UnitKind::Predicted,
        UnitKind::ClosedLoopKey,
        UnitKind::ClosedLoopPredicted,
        UnitKind::AdaptiveKey,
        UnitKind::AdaptivePredicted,
    ];

    pub fn id(self) -> u8 {
        match self {
            UnitKind::Intra => 0,
            UnitKind::Anchor => 1,
            UnitKind::Predicted => 2,
            UnitKind::ClosedLoopKey => 3,
            UnitKind::ClosedLoopPredicted => 4,
            UnitKind::AdaptiveKey => 5,
            UnitKind::AdaptivePredicted => 6,
        }
    }

    pub fn from_id(id: u8) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.id() == id)
    }

    /// A unit decodable without any earlier unit (where a decoder resynchronizes).
    pub fn is_sync_point(self) -> bool {
        matches!(
            self,
            UnitKind::Intra | UnitKind::Anchor | UnitKind::ClosedLoopKey | UnitKind::AdaptiveKey
        )
    }

    /// A unit of the adaptive mode (bitstream version 4 syntax).
    pub fn is_adaptive(self) -> bool {
        matches!(self, UnitKind::AdaptiveKey | UnitKind::AdaptivePredicted)
    }

    /// Predicted from a reference frame.
    pub fn is_predicted(self) -> bool {
        !self.is_sync_point()
    }

    /// Whether the decoded frame becomes the reference for later units.
    pub fn becomes_reference(self) -> bool {
        self != UnitKind::Predicted
    }

    pub fn name(self) -> &'static str {
        match self {
            UnitKind::Intra => "intra",
            UnitKind::Anchor => "anchor",
            UnitKind::Predicted => "predicted",
            UnitKind::ClosedLoopKey => "closed-loop-key",
            UnitKind::ClosedLoopPredicted => "closed-loop-predicted",
            UnitKind::AdaptiveKey => "adaptive-key",
            UnitKind::AdaptivePredicted => "adaptive-predicted",
        }
    }
}
