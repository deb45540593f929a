//! A complete, reproducible world to run the party in: a generated test PKI,
//! service users, registration data and an inventory that exercise every
//! check. Used by the tests, `ecos demo` and `ecos check --demo`.

use std::sync::Arc;

use ecos_duis::{
    CommandVariant, CosRequest, Execution, RequestHeader, RequestId,
    SupplierReplacementCertificates, UpdateSecurityCredentialsCoS,
};
use ecos_smki::testpki::OrgSpec;
use ecos_smki::{Eui64, MpidRules, TestPki, TestPkiSpec};
use ecos_store::{ImportMode, ImportOptions, Store};

use crate::config::PartyConfig;
use crate::keys::{CosKey, PartyKeys};
use crate::runtime::Party;
use crate::smki::SmkiRegistry;

/// Failures while building the demo world.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DemoError {
    /// The PKI could not be generated.
    #[error("test PKI: {0}")]
    Pki(String),
    /// The store refused the data.
    #[error("store: {0}")]
    Store(String),
    /// A key could not be loaded.
    #[error("key: {0}")]
    Key(String),
    /// A request could not be written or signed.
    #[error("request: {0}")]
    Request(String),
}

/// Supplier A: `ACEE ACG`, the losing supplier of the demo meters.
pub const SUPPLIER_A: Eui64 = Eui64([0x90, 0xB3, 0xD5, 0x1F, 0x30, 0x01, 0x00, 0x00]);
/// Supplier B: `BDEE BDG`, the gaining supplier.
pub const SUPPLIER_B: Eui64 = Eui64([0x90, 0xB3, 0xD5, 0x1F, 0x30, 0x03, 0x00, 0x00]);
/// Supplier C: `CFEE`, electricity only.
pub const SUPPLIER_C: Eui64 = Eui64([0x90, 0xB3, 0xD5, 0x1F, 0x30, 0x04, 0x00, 0x00]);
/// Organisation D: holds an XML Sign certificate but is no service user.
pub const ORG_UNREGISTERED: Eui64 = Eui64([0x90, 0xB3, 0xD5, 0x1F, 0x30, 0x05, 0x00, 0x00]);
/// Organisation E: a supplier whose XML Sign certificate has no CN.
pub const ORG_NO_CN: Eui64 = Eui64([0x90, 0xB3, 0xD5, 0x1F, 0x30, 0x06, 0x00, 0x00]);
/// Organisation F: a service user that is no supplier (other user).
pub const ORG_NOT_SUPPLIER: Eui64 = Eui64([0x90, 0xB3, 0xD5, 0x1F, 0x30, 0x07, 0x00, 0x00]);

/// ESME on the transitional credential, MPAN [`MPAN_1`].
pub const ESME_TCOS: Eui64 = Eui64([0x00, 0xDB, 0x12, 0x34, 0x56, 0x78, 0x90, 0xA0]);
/// ESME already migrated to the enduring credential, MPAN [`MPAN_2`].
pub const ESME_ECOS: Eui64 = Eui64([0x00, 0xDB, 0x12, 0x34, 0x56, 0x78, 0x90, 0xA1]);
/// GSME on the transitional credential, MPRN [`MPRN_1`].
pub const GSME_TCOS: Eui64 = Eui64([0x00, 0xDB, 0x12, 0x34, 0x56, 0x78, 0x90, 0xA2]);
/// A suspended ESME, MPAN [`MPAN_3`].
pub const ESME_SUSPENDED: Eui64 = Eui64([0x00, 0xDB, 0x12, 0x34, 0x56, 0x78, 0x90, 0xA3]);
/// An ESME whose MPAN [`MPAN_UNREGISTERED`] has no registration data.
pub const ESME_UNREGISTERED: Eui64 = Eui64([0x00, 0xDB, 0x12, 0x34, 0x56, 0x78, 0x90, 0xA4]);
/// A communications hub (not a meter).
pub const COMMS_HUB: Eui64 = Eui64([0x00, 0xDB, 0x12, 0x34, 0x56, 0x78, 0x90, 0xA5]);

/// The reference MPAN example (valid check digit).
pub const MPAN_1: &str = "1312345678907";
/// A second MPAN with a valid check digit.
pub const MPAN_2: &str = "2000000000015";
/// A third MPAN.
pub const MPAN_3: &str = "2000000000024";
/// An MPAN no registration data knows.
pub const MPAN_UNREGISTERED: &str = "2000000000033";
/// The reference MPRN example.
pub const MPRN_1: &str = "3938424403";

/// The registered-supplier switch in the demo data: supplier A until the
/// day before, supplier B from this date.
pub const SWITCH_DATE: &str = "2026-01-01";

/// The PKI of the demo: the `TestPkiSpec::demo()` suppliers and DCC
/// parties plus the organisations that exercise the failures, and the demo
/// devices.
pub fn pki_spec(seed: u64) -> TestPkiSpec {
    let mut spec = TestPkiSpec::demo();
    spec.seed = seed;
    for (name, eui, cn) in [
        ("Unregistered Org", ORG_UNREGISTERED, Some("DDEE")),
        ("No-CN Supplier", ORG_NO_CN, None),
        ("Other User", ORG_NOT_SUPPLIER, Some("FFEE")),
    ] {
        spec.suppliers.push(OrgSpec {
            name: name.into(),
            eui,
            mpids_cn: cn.map(str::to_string),
        });
    }
    spec.devices = vec![
        ESME_TCOS,
        ESME_ECOS,
        GSME_TCOS,
        ESME_SUSPENDED,
        ESME_UNREGISTERED,
        COMMS_HUB,
    ];
    spec
}

/// Generate the demo PKI.
pub fn pki(seed: u64) -> Result<TestPki, DemoError> {
    TestPki::generate(&pki_spec(seed)).map_err(|e| DemoError::Pki(e.to_string()))
}

fn b64(der: &[u8]) -> String {
    use base64::Engine as _;
    base64::engine::general_purpose::STANDARD.encode(der)
}

/// The service users, registration data and inventory of the demo, as the
/// CSV files `ecos regdata import` / `ecos inventory import` read.
pub fn data_files(pki: &TestPki) -> (String, String, String) {
    let users = format!(
        "org_eui,name,roles,mpids,response_endpoint\n\
         {SUPPLIER_A},Supplier A,IS GS,ACEE ACG,http://127.0.0.1:9/a\n\
         {SUPPLIER_B},Supplier B,IS GS,BDEE BDG,http://127.0.0.1:9/b\n\
         {SUPPLIER_C},Supplier C,IS,CFEE,http://127.0.0.1:9/c\n\
         {ORG_NO_CN},No-CN Supplier,IS,EEEE,http://127.0.0.1:9/e\n\
         {ORG_NOT_SUPPLIER},Other User,OU,FFEE,http://127.0.0.1:9/f\n"
    );
    let regdata = format!(
        "mpxn,supplier_mpid,effective_from,effective_to\n\
         {MPAN_1},ACEE,2020-01-01,2025-12-31\n\
         {MPAN_1},BDEE,{SWITCH_DATE},\n\
         {MPAN_2},ACEE,2020-01-01,2025-12-31\n\
         {MPAN_2},BDEE,{SWITCH_DATE},\n\
         {MPAN_3},BDEE,{SWITCH_DATE},\n\
         {MPRN_1},ACG,2020-01-01,2025-12-31\n\
         {MPRN_1},BDG,{SWITCH_DATE},\n"
    );
    let mut inventory = String::from(
        "device_eui,device_type,status,mpxn,cos_credential,ka_cert,ds_cert,csp_region,firmware_version\n",
    );
    for (eui, ty, status, mpxn, cos) in [
        (ESME_TCOS, "esme", "commissioned", MPAN_1, "transitional"),
        (ESME_ECOS, "esme", "commissioned", MPAN_2, "enduring"),
        (GSME_TCOS, "gsme", "commissioned", MPRN_1, "transitional"),
        (ESME_SUSPENDED, "esme", "suspended", MPAN_3, "transitional"),
        (
            ESME_UNREGISTERED,
            "esme",
            "commissioned",
            MPAN_UNREGISTERED,
            "transitional",
        ),
        (COMMS_HUB, "chf", "commissioned", "", ""),
    ] {
        let dev = pki.device(eui);
        let ka = dev.map(|d| b64(d.ka.cert.der())).unwrap_or_default();
        let ds = dev.map(|d| b64(d.ds.cert.der())).unwrap_or_default();
        inventory.push_str(&format!(
            "{eui},{ty},{status},{mpxn},{cos},{ka},{ds},north,4.2.0\n"
        ));
    }
    (users, regdata, inventory)
}

/// Load the demo data into `store`.
pub async fn load(store: &Store, pki: &TestPki) -> Result<(), DemoError> {
    let (users, regdata, inventory) = data_files(pki);
    let err = |e: ecos_store::StoreError| DemoError::Store(e.to_string());
    store
        .import_service_users(
            users.as_bytes(),
            &ImportOptions::new("demo-users", ImportMode::Refresh),
            &mut |_| {},
        )
        .await
        .map_err(err)?;
    store
        .import_registration(
            regdata.as_bytes(),
            &ImportOptions::new("demo-regdata", ImportMode::Refresh),
            &mut |_| {},
        )
        .await
        .map_err(err)?;
    store
        .import_inventory(
            inventory.as_bytes(),
            &ImportOptions::new("demo-inventory", ImportMode::Refresh),
            &mut |_| {},
        )
        .await
        .map_err(err)?;
    Ok(())
}

/// The party's keys from the demo PKI.
pub fn keys(pki: &TestPki) -> Result<PartyKeys, DemoError> {
    let k = |e: ecos_smki::KeyError| DemoError::Key(e.to_string());
    Ok(PartyKeys {
        tcos: CosKey {
            signer: Arc::new(pki.tcos().signer().map_err(k)?),
            certificate: pki.tcos().cert.clone(),
        },
        ecos: CosKey {
            signer: Arc::new(pki.ecos().signer().map_err(k)?),
            certificate: pki.ecos().cert.clone(),
        },
        acb: Arc::new(pki.acb_ka().key_agreement().map_err(k)?),
        dsp: Arc::new(pki.dsp_xml_sign().signer().map_err(k)?),
        dsp_certificate: pki.dsp_xml_sign().cert.clone(),
    })
}

/// The SMKI registry: the demo trust store and every organisation's XML
/// Sign certificate.
pub fn registry(pki: &TestPki) -> SmkiRegistry {
    let mut r = SmkiRegistry::new(pki.trust_store(), ecos_smki::PathPolicy::default());
    for o in pki.organisations() {
        r.add(o.xml_sign.cert.clone());
    }
    r
}

/// A party over `store` with the demo PKI's keys and certificates.
pub fn party(pki: &TestPki, store: Store, config: PartyConfig) -> Result<Party, DemoError> {
    Ok(Party::new(
        config,
        MpidRules::default(),
        registry(pki),
        store,
        keys(pki)?,
    ))
}

/// A 6.23 request as a supplier would write it, before signing.
#[derive(Debug, Clone)]
pub struct RequestSpec {
    /// RequestID originator.
    pub originator: Eui64,
    /// The device.
    pub device: Eui64,
    /// RequestID counter.
    pub counter: u64,
    /// Command variant.
    pub command_variant: u8,
    /// When.
    pub execution: Execution,
    /// ImportMPxN.
    pub import_mpxn: String,
    /// Whose supplier certificates to install (default: the originator's).
    pub certificates_of: Option<Eui64>,
}

impl RequestSpec {
    /// An immediate, command-variant-1 request.
    pub fn new(originator: Eui64, device: Eui64, counter: u64, import_mpxn: &str) -> Self {
        RequestSpec {
            originator,
            device,
            counter,
            command_variant: 1,
            execution: Execution::Immediate,
            import_mpxn: import_mpxn.to_string(),
            certificates_of: None,
        }
    }

    /// The unsigned DUIS document.
    pub fn write(&self, pki: &TestPki) -> Result<Vec<u8>, DemoError> {
        let certs_org = self.certificates_of.unwrap_or(self.originator);
        let org = pki
            .organisation(certs_org)
            .ok_or_else(|| DemoError::Request(format!("no organisation {certs_org} in the PKI")))?;
        let cv = CommandVariant::new(self.command_variant).ok_or_else(|| {
            DemoError::Request(format!("command variant {}", self.command_variant))
        })?;
        let req = CosRequest {
            schema_version: "5.4".into(),
            header: RequestHeader {
                request_id: RequestId::new(self.originator, self.device, self.counter),
                first_in_sequence: None,
                preceding_request_id: None,
                command_variant: cv,
                service_reference: "6.23".into(),
                service_reference_variant: "6.23".into(),
            },
            body: UpdateSecurityCredentialsCoS {
                execution: self.execution,
                supplier_floor_seq_number: 0,
                supplier_prepayment_top_up_floor_seq_number: Some(0),
                replacement_certificates: SupplierReplacementCertificates {
                    digital_signing: org.ds.cert.clone(),
                    key_agreement: Some(org.ka.cert.clone()),
                    key_agreement_top_up: Some(org.pp_ka.cert.clone()),
                },
                certification_path: vec![pki.issuing_ca().cert.clone()],
                apply_time_based_cpv_checks: true,
                import_mpxn: self.import_mpxn.clone(),
            },
        };
        ecos_duis::cos_request(&req).map_err(|e| DemoError::Request(e.to_string()))
    }

    /// The document signed with `signer_org`'s XML Sign key (normally the originator).
    pub fn sign_as(&self, pki: &TestPki, signer_org: Eui64) -> Result<Vec<u8>, DemoError> {
        let org = pki.organisation(signer_org).ok_or_else(|| {
            DemoError::Request(format!("no organisation {signer_org} in the PKI"))
        })?;
        let signer = org
            .xml_sign
            .signer()
            .map_err(|e| DemoError::Key(e.to_string()))?;
        ecos_xmldsig::sign(
            &self.write(pki)?,
            &signer,
            &org.xml_sign.cert.issuer_rfc2253(),
            &org.xml_sign.cert.serial_decimal(),
        )
        .map_err(|e| DemoError::Request(e.to_string()))
    }

    /// The document signed by its originator.
    pub fn signed(&self, pki: &TestPki) -> Result<Vec<u8>, DemoError> {
        self.sign_as(pki, self.originator)
    }
}
