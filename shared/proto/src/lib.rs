//! Generated code for the suite's contracts. Each package under `proto/` is one module here,
//! e.g. `crm.parties.v1` is [`crm::parties::v1`].

/// Encoded `FileDescriptorSet` of every proto in the suite, for gRPC server reflection.
pub const FILE_DESCRIPTOR_SET: &[u8] =
    include_bytes!(concat!(env!("OUT_DIR"), "/crm_descriptor.bin"));

pub mod checks;

pub mod crm {
    pub mod cases {
        pub mod v1 {
            tonic::include_proto!("crm.cases.v1");
        }
    }
    pub mod common {
        pub mod v1 {
            tonic::include_proto!("crm.common.v1");
        }
    }
    pub mod consent {
        pub mod v1 {
            tonic::include_proto!("crm.consent.v1");
        }
    }
    pub mod interactions {
        pub mod v1 {
            tonic::include_proto!("crm.interactions.v1");
        }
    }
    pub mod loyalty {
        pub mod v1 {
            tonic::include_proto!("crm.loyalty.v1");
        }
    }
    pub mod sales {
        pub mod v1 {
            tonic::include_proto!("crm.sales.v1");
        }
    }
    pub mod rewards {
        pub mod v1 {
            tonic::include_proto!("crm.rewards.v1");
        }
    }
    pub mod parties {
        pub mod v1 {
            tonic::include_proto!("crm.parties.v1");
        }
    }
}
