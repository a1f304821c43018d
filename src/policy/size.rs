//! Policy size limits, measured the way each service measures them.

use std::fmt;

/// How a service counts a policy's size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SizeUnit {
    /// Bytes of the document as sent.
    Bytes,
    /// Characters of the document as sent.
    Characters,
    /// Characters other than white space (IAM).
    NonWhitespaceCharacters,
}

/// A service's limit on one policy document.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SizeLimit {
    /// The largest allowed size.
    pub max: usize,
    /// What is counted.
    pub unit: SizeUnit,
}

impl SizeLimit {
    /// S3 bucket policies: 20 KB.
    pub const S3_BUCKET: SizeLimit = SizeLimit {
        max: 20 * 1024,
        unit: SizeUnit::Bytes,
    };
    /// ECR repository policies: 10,240 characters.
    pub const ECR_REPOSITORY: SizeLimit = SizeLimit {
        max: 10_240,
        unit: SizeUnit::Characters,
    };
    /// KMS key policies: 32 KB.
    pub const KMS_KEY: SizeLimit = SizeLimit {
        max: 32 * 1024,
        unit: SizeUnit::Bytes,
    };
    /// IAM role trust policies: 2,048 non-white-space characters unless the account's quota was raised.
    pub const IAM_TRUST_DEFAULT: SizeLimit = SizeLimit {
        max: 2_048,
        unit: SizeUnit::NonWhitespaceCharacters,
    };
    /// All inline policies of one IAM role together: 10,240 non-white-space characters.
    pub const IAM_ROLE_INLINE: SizeLimit = SizeLimit {
        max: 10_240,
        unit: SizeUnit::NonWhitespaceCharacters,
    };
    /// All inline policies of one IAM user together: 2,048 non-white-space characters.
    pub const IAM_USER_INLINE: SizeLimit = SizeLimit {
        max: 2_048,
        unit: SizeUnit::NonWhitespaceCharacters,
    };
    /// SQS queue policies: 8,192 bytes.
    pub const SQS_QUEUE: SizeLimit = SizeLimit {
        max: 8_192,
        unit: SizeUnit::Bytes,
    };
    /// SNS topic policies: 30 KB.
    pub const SNS_TOPIC: SizeLimit = SizeLimit {
        max: 30 * 1024,
        unit: SizeUnit::Bytes,
    };
    /// Secrets Manager resource policies: 20,480 characters.
    pub const SECRET: SizeLimit = SizeLimit {
        max: 20_480,
        unit: SizeUnit::Characters,
    };
    /// Lambda function policies: 20 KB.
    pub const LAMBDA_FUNCTION: SizeLimit = SizeLimit {
        max: 20 * 1024,
        unit: SizeUnit::Bytes,
    };
    /// EventBridge event bus policies: 10,240 characters.
    pub const EVENT_BUS: SizeLimit = SizeLimit {
        max: 10_240,
        unit: SizeUnit::Characters,
    };
    /// The highest trust policy quota AWS grants.
    pub const IAM_TRUST_MAX: usize = 4_096;

    /// The size of `text` in this limit's unit.
    pub fn measure(&self, text: &str) -> usize {
        match self.unit {
            SizeUnit::Bytes => text.len(),
            SizeUnit::Characters => text.chars().count(),
            SizeUnit::NonWhitespaceCharacters => {
                text.chars().filter(|c| !c.is_whitespace()).count()
            }
        }
    }

    /// `Err(size)` when `text` is over the limit.
    pub fn check(&self, text: &str) -> Result<usize, usize> {
        let size = self.measure(text);
        if size <= self.max {
            Ok(size)
        } else {
            Err(size)
        }
    }
}

impl fmt::Display for SizeUnit {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            SizeUnit::Bytes => "bytes",
            SizeUnit::Characters => "characters",
            SizeUnit::NonWhitespaceCharacters => "non-whitespace characters",
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn units_are_measured_as_the_services_do() {
        let text = "{\"a\": \"é é\"}";
        assert_eq!(SizeLimit::S3_BUCKET.measure(text), text.len());
        assert_eq!(SizeLimit::ECR_REPOSITORY.measure(text), 12);
        assert_eq!(SizeLimit::IAM_TRUST_DEFAULT.measure(text), 10);
    }

    #[test]
    fn the_limit_itself_fits_and_one_more_does_not() {
        let limit = SizeLimit {
            max: 4,
            unit: SizeUnit::Characters,
        };
        assert_eq!(limit.check("abcd"), Ok(4));
        assert_eq!(limit.check("abcde"), Err(5));
    }
}
