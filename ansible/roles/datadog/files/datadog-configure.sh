#!/bin/sh
# Run by cloud-init at boot: the API key lives in SSM, never in the AMI.
set -eu
. /etc/amis/boot.env
umask 027
key=$(/usr/local/sbin/amis-ssm-get DATADOG_API_KEY_PARAMETER)
sed -e "s|^api_key:.*|api_key: ${key}|" -e "s|^# site:.*|site: ${DATADOG_SITE:-datadoghq.com}|" \
    /etc/datadog-agent/datadog.yaml.example > /etc/datadog-agent/datadog.yaml
chgrp dd-agent /etc/datadog-agent/datadog.yaml
systemctl enable --now datadog-agent
