"""The reviewer side: users, the call catalog, the audit trail, retention and CRM export."""
