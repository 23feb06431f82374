//! A tenant's member: its id, status and profile (email, display name,
//! aliases, attributes), compact because a users map holds one in every
//! slot.

use std::collections::{BTreeMap, BTreeSet};

use super::ids::{Alias, UserId};

/// Whether a user may do anything at all.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase", try_from = "String")]
pub enum UserStatus {
    #[default]
    Active,
    /// Denied everything.
    Inactive,
}

impl UserStatus {
    /// `active` or `inactive`.
    pub fn as_str(self) -> &'static str {
        match self {
            UserStatus::Active => "active",
            UserStatus::Inactive => "inactive",
        }
    }

    /// Parses `active` or `inactive` (any case, as caosdb writes `ACTIVE`).
    pub fn parse(text: &str) -> Option<Self> {
        match text.to_ascii_lowercase().as_str() {
            "active" => Some(UserStatus::Active),
            "inactive" => Some(UserStatus::Inactive),
            _ => None,
        }
    }
}

/// Text that is not a [`UserStatus`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("status `{}` is not one of active, inactive", crate::model::quote(.value))]
pub struct UserStatusError {
    /// The text as given.
    pub value: String,
}

impl TryFrom<String> for UserStatus {
    type Error = UserStatusError;
    fn try_from(value: String) -> Result<Self, UserStatusError> {
        UserStatus::parse(&value).ok_or(UserStatusError { value })
    }
}

/// The most aliases one user may have.
pub const MAX_ALIASES: usize = 16;

/// A member of the tenant.
///
/// Kept small (at most 40 bytes, `users_stay_small`): a tenant's users map
/// holds one inline in every slot, so each byte here is a byte per user.
/// The profile text is boxed, and what most users lack (a display name,
/// aliases, attributes) lives behind one pointer that is `None` when all
/// three are empty. Written and read with the serde shape it always had
/// (`id`, `email`, `display_name`, `status`, then `aliases` and
/// `attributes`, each left out when empty), so images and records read and
/// write byte for byte as before.
#[derive(Clone, PartialEq, Eq, serde::Deserialize)]
#[serde(from = "UserFields")]
pub struct User {
    pub id: UserId,
    pub status: UserStatus,
    email: Option<Box<str>>,
    /// INVARIANT: `None` when the display name is unset and the aliases and
    /// attributes are empty, so two equal users compare equal.
    extras: Option<Box<Extras>>,
}

/// What most users lack, boxed apart (see [`User`]).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Extras {
    display_name: Option<Box<str>>,
    /// Other identities by which the user is known (an identity provider's
    /// subject id, a SPIFFE ID): a check naming one is decided as for this
    /// user. Profile data, like the email: the same in every tenant.
    aliases: BTreeSet<Alias>,
    /// Named values of the user's (`realm: ldap`), profile data like the
    /// email: a tenant's admin permission templates read them
    /// (`ACM:USER:UPDATE:STATUS:{user.realm}:{user}`).
    attributes: Attributes,
}

impl Extras {
    fn is_empty(&self) -> bool {
        self.display_name.is_none() && self.aliases.is_empty() && self.attributes.is_empty()
    }
}

static NO_ALIASES: BTreeSet<Alias> = BTreeSet::new();
static NO_ATTRIBUTES: Attributes = BTreeMap::new();

/// A user as written: the field names and order, and the fields left out
/// when empty, of the `User` struct before it was compacted. Aliases and
/// attributes are not written when empty, so an image without them reads
/// and writes as before they existed.
#[derive(serde::Serialize)]
#[serde(rename = "User")]
struct UserView<'a> {
    id: &'a UserId,
    email: Option<&'a str>,
    display_name: Option<&'a str>,
    status: UserStatus,
    #[serde(skip_serializing_if = "no_aliases")]
    aliases: &'a BTreeSet<Alias>,
    #[serde(skip_serializing_if = "no_attributes")]
    attributes: &'a Attributes,
}

fn no_aliases(aliases: &&BTreeSet<Alias>) -> bool {
    aliases.is_empty()
}

fn no_attributes(attributes: &&Attributes) -> bool {
    attributes.is_empty()
}

/// A user as read: the owned twin of [`UserView`].
#[derive(serde::Deserialize)]
#[serde(rename = "User")]
struct UserFields {
    id: UserId,
    email: Option<String>,
    display_name: Option<String>,
    status: UserStatus,
    #[serde(default)]
    aliases: BTreeSet<Alias>,
    #[serde(default)]
    attributes: Attributes,
}

impl From<UserFields> for User {
    fn from(f: UserFields) -> Self {
        let mut user = User::new(f.id)
            .with_email(f.email)
            .with_display_name(f.display_name)
            .with_aliases(f.aliases)
            .with_attributes(f.attributes);
        user.status = f.status;
        user
    }
}

impl serde::Serialize for User {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        UserView {
            id: &self.id,
            email: self.email(),
            display_name: self.display_name(),
            status: self.status,
            aliases: self.aliases(),
            attributes: self.attributes(),
        }
        .serialize(serializer)
    }
}

impl std::fmt::Debug for User {
    // As the derived `Debug` of the uncompacted struct printed it.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("User")
            .field("id", &self.id)
            .field("email", &self.email())
            .field("display_name", &self.display_name())
            .field("status", &self.status)
            .field("aliases", self.aliases())
            .field("attributes", self.attributes())
            .finish()
    }
}

/// A user's attributes: name → value.
pub type Attributes = BTreeMap<String, String>;

/// At most this many attributes a user.
pub const MAX_ATTRIBUTES: usize = 16;

/// Why an attribute cannot be a user's.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AttributeError {
    #[error("{count} attributes: at most {MAX_ATTRIBUTES} are allowed")]
    TooMany { count: usize },
    #[error(
        "attribute name `{}` must be 1–64 characters of a–z, 0–9 and `_`, starting with a letter",
        crate::model::quote(.0)
    )]
    Name(String),
    #[error(
        "attribute `{name}` must be 1–128 ASCII graphic characters other than `:` (it may become a permission segment)"
    )]
    Value { name: String },
}

/// Checks a set of attributes: their count, names and values.
pub fn check_attributes(attributes: &Attributes) -> Result<(), AttributeError> {
    if attributes.len() > MAX_ATTRIBUTES {
        return Err(AttributeError::TooMany {
            count: attributes.len(),
        });
    }
    for (name, value) in attributes {
        let name_ok = (1..=64).contains(&name.len())
            && name.starts_with(|c: char| c.is_ascii_lowercase())
            && name
                .chars()
                .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '_');
        if !name_ok {
            return Err(AttributeError::Name(name.clone()));
        }
        let value_ok = (1..=128).contains(&value.len())
            && value.chars().all(|c| c.is_ascii_graphic() && c != ':');
        if !value_ok {
            return Err(AttributeError::Value { name: name.clone() });
        }
    }
    Ok(())
}

impl User {
    /// An active user with no profile.
    pub fn new(id: UserId) -> Self {
        Self {
            id,
            status: UserStatus::Active,
            email: None,
            extras: None,
        }
    }

    /// The user's email, if any.
    pub fn email(&self) -> Option<&str> {
        self.email.as_deref()
    }

    /// The user's display name, if any.
    pub fn display_name(&self) -> Option<&str> {
        self.extras.as_ref()?.display_name.as_deref()
    }

    /// Other identities by which the user is known (an identity provider's
    /// subject id, a SPIFFE ID): a check naming one is decided as for this
    /// user. Profile data, like the email: the same in every tenant. A
    /// tenant's alias index follows them only through `Tenant`'s methods.
    pub fn aliases(&self) -> &BTreeSet<Alias> {
        self.extras.as_ref().map_or(&NO_ALIASES, |e| &e.aliases)
    }

    /// Named values of the user's (`realm: ldap`), profile data like the
    /// email: a tenant's admin permission templates read them
    /// (`ACM:USER:UPDATE:STATUS:{user.realm}:{user}`).
    pub fn attributes(&self) -> &Attributes {
        self.extras
            .as_ref()
            .map_or(&NO_ATTRIBUTES, |e| &e.attributes)
    }

    /// Sets (`Some`) or clears (`None`) the email.
    pub fn set_email(&mut self, email: Option<String>) {
        self.email = email.map(String::into_boxed_str);
    }

    /// Sets (`Some`) or clears (`None`) the display name.
    pub fn set_display_name(&mut self, display_name: Option<String>) {
        self.extras_mut().display_name = display_name.map(String::into_boxed_str);
        self.tidy();
    }

    /// Replaces the aliases. Of a tenant's member, through
    /// [`Tenant::set_aliases`], which keeps the alias index.
    pub fn set_aliases(&mut self, aliases: BTreeSet<Alias>) {
        self.extras_mut().aliases = aliases;
        self.tidy();
    }

    /// Replaces the attributes.
    pub fn set_attributes(&mut self, attributes: Attributes) {
        self.extras_mut().attributes = attributes;
        self.tidy();
    }

    /// This user with the email set (`Some`) or cleared (`None`).
    pub fn with_email(mut self, email: Option<String>) -> Self {
        self.set_email(email);
        self
    }

    /// This user with the display name set (`Some`) or cleared (`None`).
    pub fn with_display_name(mut self, display_name: Option<String>) -> Self {
        self.set_display_name(display_name);
        self
    }

    /// This user with these aliases.
    pub fn with_aliases(mut self, aliases: BTreeSet<Alias>) -> Self {
        self.set_aliases(aliases);
        self
    }

    /// This user with these attributes.
    pub fn with_attributes(mut self, attributes: Attributes) -> Self {
        self.set_attributes(attributes);
        self
    }

    fn extras_mut(&mut self) -> &mut Extras {
        self.extras.get_or_insert_with(Box::default)
    }

    /// Restores the invariant of `extras` after a change.
    fn tidy(&mut self) {
        if self.extras.as_deref().is_some_and(Extras::is_empty) {
            self.extras = None;
        }
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// A user with these aliases (they must be valid).
    pub(crate) fn user_with(id: &str, aliases: &[&str]) -> User {
        User::new(UserId::new(id).unwrap())
            .with_aliases(aliases.iter().map(|a| Alias::new(*a).unwrap()).collect())
    }

    /// `User` as it was before it was compacted: its derived serde and
    /// `Debug` are what the compact one must still produce.
    mod before {
        use super::super::{Alias, Attributes, UserId, UserStatus};
        use std::collections::{BTreeMap, BTreeSet};

        #[derive(Debug, serde::Serialize, serde::Deserialize)]
        pub struct User {
            pub id: UserId,
            pub email: Option<String>,
            pub display_name: Option<String>,
            pub status: UserStatus,
            #[serde(default, skip_serializing_if = "BTreeSet::is_empty")]
            pub aliases: BTreeSet<Alias>,
            #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
            pub attributes: Attributes,
        }
    }

    fn every_kind_of_user() -> Vec<User> {
        let id = |s: &str| UserId::new(s).unwrap();
        let attributes: Attributes = [("realm".to_owned(), "ldap".to_owned())].into();
        let mut inactive = User::new(id("i")).with_email(Some("i@x.org".into()));
        inactive.status = UserStatus::Inactive;
        vec![
            User::new(id("plain")),
            inactive,
            User::new(id("named")).with_display_name(Some("Zoë «Z» Ng".into())),
            user_with("aliased", &["idp-1", "spiffe://c/sa/r"]),
            User::new(id("attributed")).with_attributes(attributes.clone()),
            user_with("all", &["idp-2"])
                .with_email(Some("all@x.org".into()))
                .with_display_name(Some(String::new()))
                .with_attributes(attributes),
        ]
    }

    #[test]
    fn users_stay_small() {
        // A users map holds one inline in every slot (`User`'s doc).
        assert!(
            std::mem::size_of::<User>() <= 40,
            "{}",
            std::mem::size_of::<User>()
        );
    }

    #[test]
    fn a_user_keeps_its_profile_and_boxes_only_what_is_set() {
        let mut u = User::new(UserId::new("rick").unwrap());
        assert_eq!((u.email(), u.display_name()), (None, None));
        assert!(u.aliases().is_empty() && u.attributes().is_empty());
        assert!(u.extras.is_none());
        u.set_email(Some("r@x.org".into()));
        assert_eq!(u.email(), Some("r@x.org"));
        assert!(u.extras.is_none(), "the email is kept inline");
        u.set_display_name(Some("Rick".into()));
        u.set_aliases([Alias::new("idp-1").unwrap()].into());
        u.set_attributes([("realm".to_owned(), "ldap".to_owned())].into());
        assert_eq!(u.display_name(), Some("Rick"));
        assert_eq!(*u.aliases(), [Alias::new("idp-1").unwrap()].into());
        assert_eq!(u.attributes()["realm"], "ldap");
        // Emptied one by one, the extras go away, so the user equals one
        // that never had them.
        u.set_display_name(None);
        u.set_aliases(BTreeSet::new());
        assert!(u.extras.is_some());
        u.set_attributes(Attributes::new());
        assert!(u.extras.is_none());
        assert_eq!(
            u,
            User::new(UserId::new("rick").unwrap()).with_email(Some("r@x.org".into()))
        );
        u.set_email(None);
        assert_eq!(u, User::new(UserId::new("rick").unwrap()));
    }

    #[test]
    fn a_user_writes_and_reads_as_before_it_was_compacted() {
        for user in every_kind_of_user() {
            let old = before::User {
                id: user.id.clone(),
                email: user.email().map(str::to_owned),
                display_name: user.display_name().map(str::to_owned),
                status: user.status,
                aliases: user.aliases().clone(),
                attributes: user.attributes().clone(),
            };
            let json = serde_json::to_string(&user).unwrap();
            assert_eq!(json, serde_json::to_string(&old).unwrap());
            assert_eq!(format!("{user:?}"), format!("{old:?}"));
            assert_eq!(format!("{user:#?}"), format!("{old:#?}"));
            let back: User = serde_json::from_str(&json).unwrap();
            assert_eq!(back, user);
            assert_eq!(back.extras.is_none(), user.extras.is_none());
        }
        // Written without the optional fields, or with them empty, reads
        // as the plain user; an unknown field is ignored as before.
        let plain = User::new(UserId::new("p").unwrap());
        for text in [
            r#"{"id":"p","email":null,"display_name":null,"status":"active"}"#,
            r#"{"id":"p","status":"active","aliases":[],"attributes":{},"x":1}"#,
        ] {
            let back: User = serde_json::from_str(text).unwrap();
            assert_eq!(back, plain, "{text}");
            assert!(back.extras.is_none(), "{text}");
        }
        // The same errors, naming the same struct.
        for text in [r#"{"id":"p"}"#, r#"[1]"#, r#"{"id":"p","status":"asleep"}"#] {
            assert_eq!(
                serde_json::from_str::<User>(text).unwrap_err().to_string(),
                serde_json::from_str::<before::User>(text)
                    .unwrap_err()
                    .to_string(),
                "{text}"
            );
        }
    }
}
