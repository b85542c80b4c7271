//! The operation mix of `calsaga load`: `book=60,availability=30,cancel=10`
//! parsed into weights, and a weighted pick of the next operation. Pure:
//! no requests, no clock.

use std::fmt;
use std::str::FromStr;

/// One kind of request the load generator sends.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Op {
    Book,
    Availability,
    Cancel,
}

impl Op {
    pub const ALL: [Op; 3] = [Op::Book, Op::Availability, Op::Cancel];

    pub fn name(self) -> &'static str {
        match self {
            Op::Book => "book",
            Op::Availability => "availability",
            Op::Cancel => "cancel",
        }
    }
}

/// The largest weight one operation may have (keeps sums far from overflow).
const WEIGHT_MAX: u32 = 1_000_000;

/// Relative weights of the operations; at least one is above zero.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize)]
pub struct Mix {
    pub book: u32,
    pub availability: u32,
    pub cancel: u32,
}

impl Default for Mix {
    fn default() -> Mix {
        Mix {
            book: 50,
            availability: 40,
            cancel: 10,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MixError {
    #[error("{0:?} is not op=weight; write e.g. book=60,availability=30,cancel=10")]
    Shape(String),
    #[error("unknown operation {0:?}; the operations are book, availability and cancel")]
    UnknownOp(String),
    #[error("the weight of {op} ({raw:?}) is not a whole number from 0 to {WEIGHT_MAX}")]
    Weight { op: &'static str, raw: String },
    #[error("{0} is given twice; name each operation once")]
    Twice(&'static str),
    #[error("every weight is 0; give at least one operation a weight above 0")]
    Empty,
}

impl FromStr for Mix {
    type Err = MixError;

    /// Operations left out weigh 0.
    fn from_str(s: &str) -> Result<Mix, MixError> {
        let mut weights: [Option<u32>; 3] = [None; 3];
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (name, raw) = part
                .split_once('=')
                .ok_or_else(|| MixError::Shape(part.to_string()))?;
            let i = Op::ALL
                .iter()
                .position(|op| op.name() == name.trim())
                .ok_or_else(|| MixError::UnknownOp(name.trim().to_string()))?;
            let op = Op::ALL[i].name();
            let weight = raw
                .trim()
                .parse::<u32>()
                .ok()
                .filter(|w| *w <= WEIGHT_MAX)
                .ok_or_else(|| MixError::Weight {
                    op,
                    raw: raw.to_string(),
                })?;
            if weights[i].replace(weight).is_some() {
                return Err(MixError::Twice(op));
            }
        }
        let [book, availability, cancel] = weights.map(|w| w.unwrap_or(0));
        let mix = Mix {
            book,
            availability,
            cancel,
        };
        if mix.total() == 0 {
            return Err(MixError::Empty);
        }
        Ok(mix)
    }
}

impl fmt::Display for Mix {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "book={},availability={},cancel={}",
            self.book, self.availability, self.cancel
        )
    }
}

impl Mix {
    pub fn total(&self) -> u32 {
        self.book + self.availability + self.cancel
    }

    /// The operation at `roll` (taken modulo the total weight).
    pub fn pick(&self, roll: u32) -> Op {
        let r = roll % self.total().max(1);
        if r < self.book {
            Op::Book
        } else if r < self.book + self.availability {
            Op::Availability
        } else {
            Op::Cancel
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_mix_parses_in_any_order_and_missing_operations_weigh_nothing() {
        let mix: Mix = " cancel=10, book=60 ,availability=30".parse().unwrap();
        assert_eq!(
            mix,
            Mix {
                book: 60,
                availability: 30,
                cancel: 10
            }
        );
        assert_eq!(mix.to_string().parse::<Mix>().unwrap(), mix);
        let only: Mix = "availability=1".parse().unwrap();
        assert_eq!((only.book, only.availability, only.cancel), (0, 1, 0));
    }

    #[test]
    fn a_bad_mix_says_what_is_wrong() {
        let err = |s: &str| s.parse::<Mix>().unwrap_err();
        assert_eq!(err("book"), MixError::Shape("book".into()));
        assert_eq!(err("book=1,refund=2"), MixError::UnknownOp("refund".into()));
        assert!(matches!(
            err("book=-1"),
            MixError::Weight { op: "book", .. }
        ));
        assert!(matches!(err("book=2000000"), MixError::Weight { .. }));
        assert_eq!(err("book=1,book=2"), MixError::Twice("book"));
        assert_eq!(err("book=0,cancel=0"), MixError::Empty);
        assert_eq!(err(""), MixError::Empty);
        assert!(
            err("refund=2")
                .to_string()
                .contains("book, availability and cancel")
        );
    }

    #[test]
    fn picks_follow_the_weights_exactly_over_one_cycle() {
        let mix: Mix = "book=3,availability=2,cancel=1".parse().unwrap();
        let picks: Vec<Op> = (0..6).map(|r| mix.pick(r)).collect();
        use Op::*;
        assert_eq!(
            picks,
            [Book, Book, Book, Availability, Availability, Cancel]
        );
        assert_eq!(mix.pick(6), Book, "rolls wrap around the total");
        let no_cancel: Mix = "book=1,availability=1".parse().unwrap();
        assert!((0..100).all(|r| no_cancel.pick(r) != Cancel));
    }
}
