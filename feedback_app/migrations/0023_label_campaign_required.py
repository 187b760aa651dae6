# A label's campaign is required and indexed with its time (label_campaign_created); its comparison needs no index of its own
# (label_once_per_rater leads with it).

import django.db.models.deletion
from django.db import migrations, models


class Migration(migrations.Migration):

    dependencies = [
        ('feedback_app', '0022_label_campaign'),
    ]

    operations = [
        migrations.AlterField(
            model_name='preferencelabel',
            name='campaign',
            field=models.ForeignKey(db_constraint=False, db_index=False, on_delete=django.db.models.deletion.DO_NOTHING, related_name='+',
                                    to='feedback_app.campaign'),
        ),
        migrations.AddIndex(
            model_name='preferencelabel',
            index=models.Index(fields=['campaign', 'created_at'], name='label_campaign_created'),
        ),
        migrations.AlterField(
            model_name='preferencelabel',
            name='comparison',
            field=models.ForeignKey(db_index=False, on_delete=django.db.models.deletion.CASCADE, related_name='labels', to='feedback_app.comparison'),
        ),
    ]
